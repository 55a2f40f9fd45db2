"""The offline trust store: HSK/CEK collateral (and roots named explicitly) under $CSVVERIFY_HOME/certs.

Layout: ``index.json`` (entries with provenance) and one ``<sha256>.cert`` file per certificate blob.
Every entry records where it came from, when, and the result of checking it against the trusted roots at
import. Collateral that does not chain to a trusted root is refused, or kept only with ``untrusted``
set, and then never used by lookups.
"""

import fcntl
import io
import json
import os
import re
import tarfile
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from csvverify.certs import HSK_CEK_SIZE, ROOT_CERT_SIZE, parse_csv_cert, parse_root_cert
from csvverify.errors import CsvVerifyError, InputError
from csvverify.hashing import sha256
from csvverify.home import home_dir
from csvverify.inputs import read_input
from csvverify.trust import TrustRoots, is_pinned, key_fingerprint, self_signed_root_problems
from csvverify.verify import Collateral, check_collateral

SCHEMA = "csvverify/certstore/v1"
BUNDLE_SCHEMA = "csvverify/bundle/v1"
CHIP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{5,63}$")


class StoreError(CsvVerifyError):
    exit_code = 1


@dataclass
class Entry:
    kind: str  # "hsk_cek" or "root"
    sha256: str
    chip_id: str | None
    key_ids: dict
    source: str
    imported_at: str
    verification: dict
    untrusted: bool = False

    @property
    def trusted(self) -> bool:
        return not self.untrusted and self.verification.get("ok", False)

    def describe_source(self) -> str:
        return f"trust store ({self.source}, imported {self.imported_at})"


@dataclass
class ImportResult:
    imported: list[Entry] = field(default_factory=list)
    unchanged: list[Entry] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (what, why)


def now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def chip_from_path(path: Path) -> str | None:
    """<chip>/hsk_cek.cert (rats-tls, trustee, csvverify) or <chip>_hsk_cek.cert (csv-rs)."""
    if path.name == "hsk_cek.cert" and CHIP_ID.match(path.parent.name) and path.parent.name.upper() == path.parent.name:
        return path.parent.name
    if path.name.endswith("_hsk_cek.cert"):
        chip = path.name[: -len("_hsk_cek.cert")]
        return chip if CHIP_ID.match(chip) else None
    return None


class CertStore:
    def __init__(self, root: Path | None = None):
        self.dir = (root or home_dir()) / "certs"
        self._cached: tuple | None = None  # (index stat, entries)
        self._blobs: dict[str, bytes] = {}

    # -- persistence --------------------------------------------------------------------------------

    @contextmanager
    def _locked(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def entries(self) -> list[Entry]:
        path = self.dir / "index.json"
        try:
            st = path.stat()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"{path}: unreadable trust store index: {exc.strerror}") from None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._cached is None or self._cached[0] != stamp:  # lookups in a batch re-read only a changed index
            try:
                doc = json.loads(path.read_text())
                entries = [Entry(**e) for e in doc.get("entries", [])]
            except (OSError, json.JSONDecodeError, TypeError) as exc:
                raise StoreError(f"{path}: unreadable trust store index: {exc}",
                                 hint="restore it from a backup or a bundle (csvverify certs import bundle.tar)"
                                 ) from None
            self._cached = (stamp, entries)
        return [replace(e) for e in self._cached[1]]

    def _write(self, entries: list[Entry]) -> None:
        doc = {"schema": SCHEMA, "entries": [asdict(e) for e in entries]}
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".index-")
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=2)
        os.replace(tmp, self.dir / "index.json")

    def blob(self, entry: Entry) -> bytes:
        if entry.sha256 in self._blobs:
            return self._blobs[entry.sha256]
        data = (self.dir / f"{entry.sha256}.cert").read_bytes()
        if sha256(data).hex() != entry.sha256:
            raise StoreError(f"{self.dir / entry.sha256}.cert: content does not match its recorded sha256",
                             hint="the store was altered; re-import the certificate from its source")
        self._blobs[entry.sha256] = data  # content-addressed: a checked blob never changes meaning
        return data

    def _put(self, data: bytes) -> None:
        path = self.dir / f"{sha256(data).hex()}.cert"
        if not path.exists():
            path.write_bytes(data)

    # -- trust --------------------------------------------------------------------------------------

    def trust_roots(self, base: TrustRoots | None = None) -> TrustRoots:
        """The given roots plus every root imported explicitly into the store."""
        roots = base or TrustRoots()
        for e in self.entries():
            if e.kind == "root" and e.trusted:
                roots = roots.with_extra(self.blob(e), f"the trust store ({e.source}, imported {e.imported_at})")
        return roots

    # -- import -------------------------------------------------------------------------------------

    def add_hsk_cek(self, data: bytes, source: str, chip_id: str | None, roots: TrustRoots,
                    untrusted: bool = False, result: ImportResult | None = None) -> ImportResult:
        result = result or ImportResult()
        if len(data) != HSK_CEK_SIZE:
            result.refused.append((source, f"{len(data)} bytes; an hsk_cek.cert is {HSK_CEK_SIZE}"))
            return result
        hsk, cek = data[:ROOT_CERT_SIZE], data[ROOT_CERT_SIZE:]
        try:
            cek_cert = parse_csv_cert(cek, source)
            key_ids = {"hsk": parse_root_cert(hsk, source).key_id.hex(),
                       "cek_fingerprint": key_fingerprint(cek_cert.key, cek_cert.uid)}
        except InputError as exc:
            result.refused.append((source, exc.message))
            return result
        _, problems = check_collateral(Collateral(hsk, cek, source, source), roots, chip_id or "")
        verification = {"ok": not problems, "problems": problems, "checked_at": now(),
                        "roots": [r.fingerprint for r in roots.roots]}
        if problems and not untrusted:
            result.refused.append((source, "does not chain to a trusted root: " + "; ".join(problems)))
            return result
        entry = Entry("hsk_cek", sha256(data).hex(), chip_id, key_ids, source, now(), verification, untrusted)
        return self._add(entry, data, result)

    def add_root(self, data: bytes, source: str, result: ImportResult | None = None) -> ImportResult:
        result = result or ImportResult()
        try:
            cert = parse_root_cert(data, source)
        except InputError as exc:
            result.refused.append((source, exc.message))
            return result
        problems = self_signed_root_problems(cert)
        if problems:
            result.refused.append((source, "not a valid self-signed root: " + "; ".join(problems)))
            return result
        note = "the pinned Hygon root" if is_pinned(cert) else "an extra root, trusted because it was imported with --root"
        entry = Entry("root", sha256(data).hex(), None, {"root": cert.key_id.hex()}, source, now(),
                      {"ok": True, "problems": [], "checked_at": now(), "note": note})
        return self._add(entry, data, result)

    def _add(self, entry: Entry, data: bytes, result: ImportResult) -> ImportResult:
        with self._locked():
            entries = self.entries()
            same = next((e for e in entries if e.sha256 == entry.sha256 and e.chip_id == entry.chip_id), None)
            if same is not None:
                result.unchanged.append(same)
                return result
            self._put(data)
            entries.append(entry)
            self._write(entries)
        result.imported.append(entry)
        return result

    def import_path(self, path: Path, roots: TrustRoots, chip_id: str | None = None, untrusted: bool = False,
                    as_root: bool = False) -> ImportResult:
        """A file, a directory tree of hsk_cek files, or a bundle made by ``export``."""
        result = ImportResult()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*hsk_cek.cert") if p.is_file())
            if not found:
                result.refused.append((str(path), "no hsk_cek.cert or <chip>_hsk_cek.cert files below it"))
            for p in found:
                self.add_hsk_cek(read_input(p), f"file {p.resolve()}", chip_id or chip_from_path(p), roots,
                                 untrusted, result)
            return result
        data = read_input(path)
        if tarfile.is_tarfile(path):
            return self.import_bundle(data, str(path), roots, result)
        if as_root:
            return self.add_root(data, f"file {path.resolve()}", result)
        if len(data) == ROOT_CERT_SIZE:
            result.refused.append((str(path), "an 832-byte root-style certificate: to trust a root explicitly use "
                                              "`certs import --root FILE`; an HSK alone is imported as hsk_cek.cert"))
            return result
        return self.add_hsk_cek(data, f"file {path.resolve()}", chip_id or chip_from_path(path), roots, untrusted,
                                result)

    # -- bundles ------------------------------------------------------------------------------------

    def export_bundle(self, out: Path) -> int:
        """One tar file with the index and every blob; byte-identical for the same store contents."""
        entries = self.entries()
        manifest = json.dumps({"schema": BUNDLE_SCHEMA, "entries": [asdict(e) for e in entries]}, indent=2,
                              sort_keys=True).encode()
        members = [("manifest.json", manifest)] + [(f"certs/{e.sha256}.cert", self.blob(e))
                                                   for e in sorted(entries, key=lambda e: (e.sha256, e.chip_id or ""))]
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            seen = set()
            for name, data in members:
                if name in seen:
                    continue
                seen.add(name)
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))
        out.write_bytes(buf.getvalue())
        return len(entries)

    def import_bundle(self, data: bytes, source: str, roots: TrustRoots, result: ImportResult) -> ImportResult:
        try:
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
            doc = json.loads(files["manifest.json"])
            if doc.get("schema") != BUNDLE_SCHEMA:
                raise ValueError(f"schema {doc.get('schema')!r} is not {BUNDLE_SCHEMA}")
            bundle_entries = [Entry(**e) for e in doc["entries"]]
        except (tarfile.TarError, KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{source}: not a csvverify certificate bundle: {exc}") from None
        for e in sorted(bundle_entries, key=lambda e: e.kind != "root"):  # roots first: collateral may need them
            blob = files.get(f"certs/{e.sha256}.cert")
            if blob is None or sha256(blob).hex() != e.sha256:
                result.refused.append((f"{source}: {e.sha256[:16]}…", "missing or altered inside the bundle"))
                continue
            if e.kind == "root":
                probe = self.add_root(blob, e.source, ImportResult())
            else:
                probe = self.add_hsk_cek(blob, e.source, e.chip_id, self.trust_roots(roots), e.untrusted,
                                         ImportResult())
            if probe.refused:
                result.refused.extend(probe.refused)
                continue
            kept = probe.imported or probe.unchanged
            if probe.imported:  # keep the original provenance exactly as exported
                self._replace(kept[0], e)
                result.imported.append(e)
            else:
                result.unchanged.extend(kept)
        return result

    def _replace(self, new: Entry, original: Entry) -> None:
        with self._locked():
            entries = [original if (x.sha256, x.chip_id, x.imported_at) == (new.sha256, new.chip_id, new.imported_at)
                       else x for x in self.entries()]
            self._write(entries)

    # -- lookup -------------------------------------------------------------------------------------

    def find(self, chip_id: str, signs_pek=None) -> Collateral | None:
        """Trusted collateral filed under this chip id; else a chip-less entry whose CEK signed the PEK."""
        trusted = [e for e in self.entries() if e.kind == "hsk_cek" and e.trusted]
        for e in reversed([e for e in trusted if e.chip_id == chip_id]):
            data = self.blob(e)
            return Collateral(data[:ROOT_CERT_SIZE], data[ROOT_CERT_SIZE:], e.describe_source(), e.describe_source(),
                              chip_id=e.chip_id)
        if signs_pek is not None:
            for e in reversed([e for e in trusted if e.chip_id is None]):
                data = self.blob(e)
                if signs_pek(data[ROOT_CERT_SIZE:]):
                    src = e.describe_source() + ", matched by the CEK's signature on the PEK (filed without a chip id)"
                    return Collateral(data[:ROOT_CERT_SIZE], data[ROOT_CERT_SIZE:], src, src)
        return None
