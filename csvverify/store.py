"""The offline trust store: HSK/CEK collateral (and roots named explicitly) under $CSVVERIFY_HOME/certs.

Layout: ``index.json`` (entries with provenance) and one ``<sha256>.cert`` file per certificate blob.
Every entry records where it came from, when, how its chip id was chosen, and the result of checking it
against the trusted roots at import. Collateral that does not chain to a trusted root is refused, or kept
only with ``untrusted`` set, and then never used by lookups. Every field read back (index or bundle) is
validated: a damaged index is one clear error, never a traceback.
"""

import fcntl
import hashlib
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
from csvverify.errors import CsvVerifyError, InputError, UsageError
from csvverify.hashing import sha256
from csvverify.home import home_dir
from csvverify.inputs import read_input
from csvverify.trust import TrustRoots, is_pinned, key_fingerprint, self_signed_root_problems
from csvverify.verify import Collateral, check_collateral

SCHEMA = "csvverify/certstore/v1"
BUNDLE_SCHEMA = "csvverify/bundle/v2"
OLD_BUNDLE_SCHEMA = "csvverify/bundle/v1"  # entries were the exporter's index entries, read as their provenance
MAX_BUNDLE = 512 << 20  # ~140 000 chips; bundles are streamed, this only stops a stray huge file
MAX_MANIFEST = 128 << 20
CHIP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{5,63}$")  # what a path component must look like to name a chip
CHIP_ID_MAX = 63  # the report's chip id field is 64 bytes, NUL terminated
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_HEX = re.compile(r"^[0-9a-f]+$")
_KINDS = ("hsk_cek", "root")
_CERT_SIZES = (ROOT_CERT_SIZE, HSK_CEK_SIZE)


class StoreError(CsvVerifyError):
    exit_code = 1


def chip_id_problem(chip_id) -> str | None:
    """Why this is not a usable chip id: non-empty printable ASCII, at most 63 bytes, no outer spaces."""
    if not isinstance(chip_id, str) or not chip_id:
        return "expected a non-empty string"
    if any(not 0x20 <= ord(c) < 0x7F for c in chip_id):
        return "only printable ASCII characters are allowed"
    if chip_id != chip_id.strip():
        return "leading or trailing spaces are not allowed"
    if len(chip_id) > CHIP_ID_MAX:
        return f"{len(chip_id)} characters; a chip id has at most {CHIP_ID_MAX}"
    return None


def check_chip_id(chip_id: str, what: str = "--chip-id") -> str:
    problem = chip_id_problem(chip_id)
    if problem:
        raise UsageError(f"{what} {chip_id!r}: {problem}",
                         hint="the chip id is printed by `csvverify show report.cert`")
    return chip_id


@dataclass
class Entry:
    kind: str  # "hsk_cek" or "root"
    sha256: str
    chip_id: str | None
    key_ids: dict
    source: str
    imported_at: str
    verification: dict  # checked here, at import: ok, problems, checked_at, roots, chained_to
    untrusted: bool = False  # kept although it failed verification (--untrusted); never used by lookups
    chip_from: str | None = None  # how the chip id was chosen: --chip-id, the file's path, the KDS request, a bundle
    history: list = field(default_factory=list)  # provenance a bundle carried (as the exporter states it)

    @property
    def trusted(self) -> bool:
        return not self.untrusted and self.verification.get("ok", False)

    def describe_source(self) -> str:
        return f"trust store ({self.source}, imported {self.imported_at})"

    def provenance(self) -> list[dict]:
        """Where the entry came from first: what a bundle carries (an import from a bundle adds nothing)."""
        return self.history or [{"source": self.source, "imported_at": self.imported_at, "chip_from": self.chip_from,
                                 "verification": self.verification}]

    def bundle_record(self) -> dict:
        return {"kind": self.kind, "sha256": self.sha256, "chip_id": self.chip_id, "untrusted": self.untrusted,
                "provenance": self.provenance()}


@dataclass
class ImportResult:
    imported: list[Entry] = field(default_factory=list)
    upgraded: list[Entry] = field(default_factory=list)  # stored before as UNTRUSTED, verified now
    unchanged: list[Entry] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (what, why)
    notes: list[str] = field(default_factory=list)

    def merge(self, other: "ImportResult") -> None:
        for name in ("imported", "upgraded", "unchanged", "refused", "notes"):
            getattr(self, name).extend(getattr(other, name))


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


# -- validation of what is read back -------------------------------------------------------------------

def _want(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise ValueError(f"{where}: {what}")


def _is_time(value) -> bool:
    try:
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _strings(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _check_keys(d, where: str, required: set, optional: set) -> None:
    _want(isinstance(d, dict), where, f"expected an object, found {type(d).__name__}")
    missing, unknown = required - set(d), set(d) - required - optional
    _want(not missing, where, f"missing {', '.join(sorted(missing))}")
    _want(not unknown, where, f"unknown field {', '.join(sorted(map(repr, unknown)))}")


def _check_verification(v, where: str) -> None:
    _check_keys(v, where, {"ok", "problems", "checked_at"}, {"roots", "note", "chained_to"})
    _want(isinstance(v["ok"], bool), f"{where}.ok", "expected true or false")
    _want(_strings(v["problems"]), f"{where}.problems", "expected a list of strings")
    _want(_is_time(v["checked_at"]), f"{where}.checked_at", "expected an ISO 8601 time with a time zone")
    _want(_strings(v.get("roots", [])), f"{where}.roots", "expected a list of fingerprints")
    _want(isinstance(v.get("note", ""), str), f"{where}.note", "expected a string")
    chained = v.get("chained_to")
    _want(chained is None or (isinstance(chained, dict) and all(isinstance(x, str) for x in chained.values())),
          f"{where}.chained_to", "expected an object of strings")


def _check_chip(value, where: str) -> None:
    problem = None if value is None else chip_id_problem(value)
    _want(problem is None, where, f"not a chip id ({problem})")


def _check_provenance(p, where: str) -> None:
    _check_keys(p, where, {"source", "imported_at", "verification"}, {"chip_from"})
    _want(isinstance(p["source"], str) and p["source"] != "", f"{where}.source", "expected a non-empty string")
    _want(_is_time(p["imported_at"]), f"{where}.imported_at", "expected an ISO 8601 time with a time zone")
    _want(p.get("chip_from") is None or isinstance(p["chip_from"], str), f"{where}.chip_from", "expected a string")
    _check_verification(p["verification"], f"{where}.verification")


def _check_identity(d: dict, where: str) -> None:
    _want(d["kind"] in _KINDS, f"{where}.kind", f"expected one of {', '.join(_KINDS)}")
    _want(isinstance(d["sha256"], str) and bool(_SHA256.match(d["sha256"])), f"{where}.sha256",
          "expected 64 lowercase hex digits")
    _check_chip(d["chip_id"], f"{where}.chip_id")
    _want(d["kind"] == "hsk_cek" or d["chip_id"] is None, f"{where}.chip_id", "a root is not filed under a chip")
    _want(isinstance(d.get("untrusted", False), bool), f"{where}.untrusted", "expected true or false")


def entry_from_dict(d, where: str) -> Entry:
    """An index entry, every field checked (raises ValueError naming the field)."""
    _check_keys(d, where, {"kind", "sha256", "chip_id", "key_ids", "source", "imported_at", "verification"},
                {"untrusted", "chip_from", "history"})
    _check_identity(d, where)
    _want(isinstance(d["key_ids"], dict) and all(isinstance(v, str) and _HEX.match(v) for v in d["key_ids"].values()),
          f"{where}.key_ids", "expected an object of hex strings")
    _check_provenance({k: d[k] for k in ("source", "imported_at", "verification", "chip_from") if k in d}, where)
    history = d.get("history", [])
    _want(isinstance(history, list), f"{where}.history", "expected a list")
    for i, p in enumerate(history):
        _check_provenance(p, f"{where}.history[{i}]")
    return Entry(d["kind"], d["sha256"], d["chip_id"], d["key_ids"], d["source"], d["imported_at"], d["verification"],
                 d.get("untrusted", False), d.get("chip_from"), history)


def bundle_records(doc, where: str) -> list:
    """The manifest's entries as (record dict | None, problem | None); raises ValueError if the manifest is unusable."""
    _want(isinstance(doc, dict), where, "the manifest is not a JSON object")
    schema = doc.get("schema")
    _want(schema in (BUNDLE_SCHEMA, OLD_BUNDLE_SCHEMA), f"{where}.schema", f"{schema!r} is not {BUNDLE_SCHEMA}")
    _want(isinstance(doc.get("entries"), list), f"{where}.entries", "expected a list")
    out = []
    for i, raw in enumerate(doc["entries"]):
        at = f"{where}.entries[{i}]"
        try:
            if schema == OLD_BUNDLE_SCHEMA:
                record = entry_from_dict(raw, at).bundle_record()
            else:
                _check_keys(raw, at, {"kind", "sha256", "chip_id", "provenance"}, {"untrusted"})
                _check_identity(raw, at)
                _want(isinstance(raw["provenance"], list) and raw["provenance"], f"{at}.provenance",
                      "expected a non-empty list")
                for j, p in enumerate(raw["provenance"]):
                    _check_provenance(p, f"{at}.provenance[{j}]")
                record = raw
            out.append((record, None))
        except ValueError as exc:
            out.append((None, str(exc)))
    return out


# -- the store -----------------------------------------------------------------------------------------

class CertStore:
    def __init__(self, root: Path | None = None):
        self.dir = (root or home_dir()) / "certs"
        self._cached: tuple | None = None  # (index stat, entries)
        self._blobs: dict[str, bytes] = {}

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
                self._cached = (stamp, self._read_index(path))
            except StoreError as exc:  # ... and a damaged one is not parsed again for every report
                self._cached = (stamp, exc)
        found = self._cached[1]
        if isinstance(found, StoreError):
            raise StoreError(found.message, hint=found.hint)
        return [replace(e) for e in found]

    def _read_index(self, path: Path) -> list[Entry]:
        try:
            doc = json.loads(path.read_bytes())
            _want(isinstance(doc, dict), "index", f"expected a JSON object, found {type(doc).__name__}")
            _want(doc.get("schema") == SCHEMA, "index.schema", f"{doc.get('schema')!r} is not {SCHEMA}")
            _want(isinstance(doc.get("entries"), list), "index.entries", "expected a list")
            return [entry_from_dict(e, f"entries[{i}]") for i, e in enumerate(doc["entries"])]
        except (OSError, ValueError, RecursionError) as exc:  # JSONDecodeError and field problems are ValueErrors
            what = exc.strerror if isinstance(exc, OSError) else exc
            raise StoreError(f"{path}: the trust store index is damaged: {what}",
                             hint=f"move {path} aside and import the collateral again (csvverify certs import …, "
                                  f"or a bundle); the certificate files beside it are not affected") from None

    def _write(self, entries: list[Entry]) -> None:
        doc = {"schema": SCHEMA, "entries": [asdict(e) for e in entries]}
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".index-")
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=2)
        os.replace(tmp, self.dir / "index.json")

    def blob(self, entry: Entry) -> bytes:
        if entry.sha256 in self._blobs:
            return self._blobs[entry.sha256]
        path = self.dir / f"{entry.sha256}.cert"
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StoreError(f"{path}: certificate file of a trust store entry cannot be read: {exc.strerror}",
                             hint="import the certificate again from its source; the store repairs the file") from None
        if sha256(data).hex() != entry.sha256:
            raise StoreError(f"{path}: content does not match its recorded sha256",
                             hint="the store was altered; import the certificate again from its source to repair it")
        self._blobs[entry.sha256] = data  # content-addressed: a checked blob never changes meaning
        return data

    def _put(self, data: bytes) -> None:
        """Write a blob unless an intact copy exists; a damaged copy is replaced (atomically)."""
        digest = sha256(data).hex()
        path = self.dir / f"{digest}.cert"
        try:
            if sha256(path.read_bytes()).hex() == digest:
                return
        except OSError:
            pass
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".blob-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        self._blobs.pop(digest, None)

    # -- trust --------------------------------------------------------------------------------------

    def trust_roots(self, base: TrustRoots | None = None) -> TrustRoots:
        """The given roots plus every root imported explicitly into the store."""
        roots = base or TrustRoots()
        for e in self.entries():
            if e.kind == "root" and e.trusted:
                roots = roots.with_extra(self.blob(e), e.source, imported_at=e.imported_at)
        return roots

    def standing(self, entry: Entry, roots: TrustRoots) -> str:
        """How an entry stands for lookups, given the roots a plain verification trusts."""
        if entry.untrusted:
            return "UNTRUSTED"
        if not entry.trusted:
            return "FAILED CHECK"
        chained = entry.verification.get("chained_to") or {}
        fingerprints = {r.fingerprint for r in roots.roots}
        if chained.get("fingerprint") and chained["fingerprint"] not in fingerprints:
            return f"verified only with --trust-root {chained.get('source', '?')}"
        return "trusted"

    # -- import -------------------------------------------------------------------------------------

    def _hsk_cek_entry(self, data: bytes, source: str, chip_id: str | None, roots: TrustRoots, untrusted: bool,
                       chip_from: str | None, result: ImportResult, history: list | None = None) -> Entry | None:
        if len(data) != HSK_CEK_SIZE:
            result.refused.append((source, f"{len(data)} bytes; an hsk_cek.cert is {HSK_CEK_SIZE}"))
            return None
        hsk_raw, cek_raw = data[:ROOT_CERT_SIZE], data[ROOT_CERT_SIZE:]
        try:
            hsk, cek = parse_root_cert(hsk_raw, source), parse_csv_cert(cek_raw, source)
            key_ids = {"hsk": hsk.key_id.hex(), "cek_fingerprint": key_fingerprint(cek.key, cek.uid, "CEK")}
        except InputError as exc:
            result.refused.append((source, exc.message))
            return None
        _, problems = check_collateral(Collateral(hsk_raw, cek_raw, source, source), roots, chip_id or "")
        root = roots.for_key_id(hsk.certifying_id)
        verification = {"ok": not problems, "problems": problems, "checked_at": now(),
                        "roots": [r.fingerprint for r in roots.roots],
                        "chained_to": root.to_dict() if root is not None and not problems else None}
        if problems and not untrusted:
            result.refused.append((source, "does not chain to a trusted root: " + "; ".join(problems)))
            return None
        return Entry("hsk_cek", sha256(data).hex(), chip_id, key_ids, source, now(), verification, bool(problems),
                     chip_from, history or [])

    def _root_entry(self, data: bytes, source: str, result: ImportResult, history: list | None = None) -> Entry | None:
        try:
            cert = parse_root_cert(data, source)
            key_fingerprint(cert.key, cert.uid, "root certificate")
        except InputError as exc:
            result.refused.append((source, exc.message))
            return None
        problems = self_signed_root_problems(cert)
        if problems:
            result.refused.append((source, "not a valid self-signed root: " + "; ".join(problems)))
            return None
        note = ("the pinned Hygon root" if is_pinned(cert) else
                "an extra root, trusted because it was imported with --root")
        return Entry("root", sha256(data).hex(), None, {"root": cert.key_id.hex()}, source, now(),
                     {"ok": True, "problems": [], "checked_at": now(), "note": note}, history=history or [])

    def add_hsk_cek(self, data: bytes, source: str, chip_id: str | None, roots: TrustRoots,
                    chip_from: str | None = None) -> ImportResult:
        result = ImportResult()
        entry = self._hsk_cek_entry(data, source, chip_id, roots, False, chip_from, result)
        if entry is not None:
            self._commit([(entry, data)], result)
        return result

    def add_root(self, data: bytes, source: str, result: ImportResult) -> ImportResult:
        entry = self._root_entry(data, source, result)
        if entry is not None:
            self._commit([(entry, data)], result)
        return result

    def _commit(self, pending: list[tuple[Entry, bytes]], result: ImportResult) -> None:
        """Merge new entries into the index in one write: an UNTRUSTED entry is replaced when the same
        certificate (and chip id) now verifies; anything else already stored stays as it is."""
        if not pending:
            return
        with self._locked():
            entries = self.entries()
            where = {(e.sha256, e.chip_id): i for i, e in enumerate(entries)}
            changed = False
            for entry, data in pending:
                self._put(data)  # also repairs the file of an entry already stored
                at = where.get((entry.sha256, entry.chip_id))
                if at is not None and (entries[at].trusted or not entry.trusted):
                    result.unchanged.append(entries[at])
                    continue
                if at is None:
                    where[(entry.sha256, entry.chip_id)] = len(entries)
                    entries.append(entry)
                    result.imported.append(entry)
                else:
                    entries[at] = entry
                    result.upgraded.append(entry)
                changed = True
            if changed:
                self._write(entries)

    def import_path(self, path: Path, roots: TrustRoots, chip_id: str | None = None, untrusted: bool = False,
                    as_root: bool = False) -> ImportResult:
        """A file, a directory tree of hsk_cek files, or a bundle made by ``export``."""
        if chip_id is not None:
            check_chip_id(chip_id)
        result = ImportResult()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*hsk_cek.cert") if p.is_file())
            if not found:
                result.refused.append((str(path), "no hsk_cek.cert or <chip>_hsk_cek.cert files below it"))
            pending = [self._file_entry(p, roots, chip_id, untrusted, result) for p in found]
            self._commit([p for p in pending if p is not None], result)
            return result
        if _is_bundle(path):
            return self.import_bundle(path, roots, result, as_root)
        try:
            data = _read_small(path)
        except InputError as exc:
            result.refused.append((str(path), exc.message))
            return result
        if as_root:
            return self.add_root(data, f"file {path.resolve()}", result)
        if len(data) == ROOT_CERT_SIZE:
            result.refused.append((str(path), "an 832-byte root-style certificate: to trust a root explicitly use "
                                              "`certs import --root FILE`; an HSK alone is imported as hsk_cek.cert"))
            return result
        pending = self._file_entry(path, roots, chip_id, untrusted, result, data)
        self._commit([pending] if pending else [], result)
        return result

    def _file_entry(self, path: Path, roots: TrustRoots, chip_id: str | None, untrusted: bool, result: ImportResult,
                    data: bytes | None = None) -> tuple[Entry, bytes] | None:
        try:
            data = data if data is not None else _read_small(path)
        except InputError as exc:
            result.refused.append((str(path), exc.message))
            return None
        inferred = None if chip_id else chip_from_path(path)
        how = "--chip-id" if chip_id else (f"the file's path ({path.parent.name}/{path.name})" if inferred else None)
        entry = self._hsk_cek_entry(data, f"file {path.resolve()}", chip_id or inferred, roots, untrusted, how, result)
        if entry is None:
            return None
        if entry.chip_id is None:
            result.notes.append(f"{path}: filed without a chip id (an hsk_cek.cert names none). `--chain` still finds "
                                "it by its CEK's signature on the report's PEK, but chip.binding is then skipped; to "
                                "bind it, import it again with --chip-id CHIP")
        return entry, data

    # -- bundles ------------------------------------------------------------------------------------

    def export_bundle(self, out: Path) -> int:
        """One tar file with the manifest and every blob. Canonical: entries sorted, fixed metadata, and each
        entry's original provenance, so the same collateral gives the same bytes whatever the import order
        (and an export of an imported bundle is the bundle again)."""
        entries = sorted(self.entries(), key=lambda e: (e.kind, e.sha256, e.chip_id or ""))
        manifest = json.dumps({"schema": BUNDLE_SCHEMA, "entries": [e.bundle_record() for e in entries]}, indent=2,
                              sort_keys=True).encode()
        blobs = {e.sha256: e for e in entries}
        with open(out, "wb") as fh, tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
            _add_member(tar, "manifest.json", manifest)
            for digest in sorted(blobs):
                _add_member(tar, f"certs/{digest}.cert", self.blob(blobs[digest]))
        return len(entries)

    def import_bundle(self, path: Path, roots: TrustRoots, result: ImportResult, as_root: bool = False) -> ImportResult:
        """Re-verify every certificate of a bundle. Its roots are imported only with ``as_root`` (--root);
        each entry is recorded as coming from this bundle, with the exporter's provenance kept as history."""
        size = path.stat().st_size
        if size > MAX_BUNDLE:
            raise StoreError(f"{path}: {size} bytes is larger than the {MAX_BUNDLE}-byte limit for a bundle",
                             hint="check it is a bundle written by `csvverify certs export`")
        source = f"bundle {path.resolve()} (sha256 {_file_sha256(path)})"
        try:
            with tarfile.open(path, mode="r:*") as tar:
                members = {m.name: m for m in tar if m.isfile()}
                manifest = members.get("manifest.json")
                if manifest is None or manifest.size > MAX_MANIFEST:
                    raise ValueError("no manifest.json" if manifest is None else "manifest.json is far too large")
                records = bundle_records(json.loads(tar.extractfile(manifest).read()), "manifest.json")
                self._import_records(tar, members, records, source, roots, result, as_root)
        except (tarfile.TarError, ValueError, RecursionError, EOFError) as exc:
            raise StoreError(f"{path}: not a usable csvverify certificate bundle: {exc}",
                             hint="bundles are written by `csvverify certs export`") from None
        return result

    def _import_records(self, tar, members, records, source, roots, result, as_root) -> None:
        refused_roots: set[bytes] = set()
        pending: list[tuple[Entry, bytes]] = []
        for record, problem in sorted(records, key=lambda r: r[0] is None or r[0]["kind"] != "root"):
            if record is None:
                result.refused.append((source, f"manifest entry unusable: {problem}"))
                continue
            what = f"{source}: {record['kind']} {record['sha256'][:16]}…"
            info = members.get(f"certs/{record['sha256']}.cert")
            blob = tar.extractfile(info).read() if info is not None and info.size in _CERT_SIZES else None
            if blob is None or sha256(blob).hex() != record["sha256"]:
                result.refused.append((what, "missing or altered inside the bundle"))
                continue
            if record["kind"] == "root":
                entry = self._bundle_root(blob, what, source, record, roots, refused_roots, as_root, result)
                if entry is not None:
                    try:
                        roots = roots.with_extra(blob, source, imported_at=entry.imported_at)
                    except InputError as exc:
                        result.refused.append((what, exc.message))
                        continue
            else:
                entry = self._bundle_hsk_cek(blob, what, source, record, roots, refused_roots, result)
            if entry is not None:
                pending.append((entry, blob))
        self._commit(pending, result)

    def _bundle_root(self, blob, what, source, record, roots, refused_roots, as_root, result) -> Entry | None:
        if not as_root:
            key_id = blob[4:20]
            trusted = roots.for_key_id(key_id)
            if trusted is not None and _same_key(trusted, blob):
                result.notes.append(f"{what}: root key id {key_id.hex()} is already trusted here "
                                    f"({trusted.describe()}); the bundle's copy was not needed")
                return None
            refused_roots.add(key_id)
            result.refused.append((what, f"a root (key id {key_id.hex()}) is imported from a bundle only with "
                                         "`certs import --root BUNDLE`; it was not imported"))
            return None
        probe = ImportResult()
        entry = self._root_entry(blob, source, probe, record["provenance"])
        result.refused.extend((what, why) for _, why in probe.refused)
        return entry

    def _bundle_hsk_cek(self, blob, what, source, record, roots, refused_roots, result) -> Entry | None:
        probe = ImportResult()
        entry = self._hsk_cek_entry(blob, source, record["chip_id"], roots, record.get("untrusted", False),
                                    "the bundle's manifest", probe, record["provenance"])
        issuer = blob[20:36]  # the HSK's certifying id
        for _, why in probe.refused:
            if issuer in refused_roots:
                why = (f"it chains only to the bundle's root {issuer.hex()}, which was not imported (import "
                       "the bundle with --root to trust that root)")
            result.refused.append((what, why))
        return entry

    # -- lookup and removal -------------------------------------------------------------------------

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

    def untrusted_for(self, chip_id: str) -> list[Entry]:
        """Collateral kept without trust that a lookup for this chip id would otherwise consider."""
        return [e for e in self.entries() if e.kind == "hsk_cek" and not e.trusted and e.chip_id in (chip_id, None)]

    def remove(self, sha256_prefix: str | None = None, chip_id: str | None = None) -> list[Entry]:
        """Remove the entries matching every selector given; blobs no entry uses any more are deleted."""
        if sha256_prefix is None and chip_id is None:
            raise UsageError("say which entries to remove: a sha256 prefix, --chip-id, or both",
                             hint="`csvverify certs list` shows them")
        prefix = None if sha256_prefix is None else sha256_prefix.lower()
        if prefix is not None and not (4 <= len(prefix) <= 64 and _HEX.match(prefix)):
            raise UsageError(f"{sha256_prefix!r} is not a sha256 prefix (4 to 64 hex digits)")
        with self._locked():
            entries = self.entries()
            gone = [e for e in entries if (prefix is None or e.sha256.startswith(prefix))
                    and (chip_id is None or e.chip_id == chip_id)]
            if not gone:
                raise StoreError("no trust store entry matches " + " and ".join(
                    s for s in (prefix and f"sha256 {prefix}…", chip_id and f"chip {chip_id!r}") if s),
                    hint="`csvverify certs list` shows the entries")
            if prefix is not None and len({e.sha256 for e in gone}) > 1:
                raise UsageError(f"sha256 prefix {prefix} matches {len({e.sha256 for e in gone})} certificates: "
                                 + ", ".join(sorted({e.sha256[:16] + '…' for e in gone})), hint="give more digits")
            kept = [e for e in entries if e not in gone]
            self._write(kept)
            for digest in {e.sha256 for e in gone} - {e.sha256 for e in kept}:
                (self.dir / f"{digest}.cert").unlink(missing_ok=True)
                self._blobs.pop(digest, None)
        return gone


def _read_small(path: Path) -> bytes:
    """A certificate file: anything larger than an hsk_cek.cert is refused before it is read."""
    try:
        size = path.stat().st_size
    except OSError:
        size = 0  # read_input names the problem
    if size > HSK_CEK_SIZE:
        raise InputError(f"{path}: {size} bytes is neither a certificate ({ROOT_CERT_SIZE} or {HSK_CEK_SIZE} bytes) "
                         "nor a csvverify bundle", hint="bundles are written by `csvverify certs export`")
    return read_input(path)


def _is_bundle(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size not in _CERT_SIZES and tarfile.is_tarfile(path)
    except OSError:
        return False


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def _same_key(root, blob: bytes) -> bool:
    try:
        cert = parse_root_cert(blob, "bundle root")
    except InputError:
        return False
    return cert.key == root.key and cert.uid == root.uid
