"""Finding HSK/CEK certificates for --chain, on the local disk only (never on the network).

Lookup order: explicit files (--hsk-cek, or --hsk with --cek) → a directory given with --certs
(``DIR/<chip id>/hsk_cek.cert``, then ``DIR/hsk_cek.cert``) → the trust store → the paths other tools
use (``/opt/hygon/csv/hsk_cek/<chip>/hsk_cek.cert``, ``/opt/csv/hsk_cek/<chip>/hsk_cek.cert``,
``/opt/dcu/certs/<chip>_hsk_cek.cert``) → certificates carried inside the evidence. Every result says
where it came from; explicit files that are unusable stop the command with a clear error, other
unusable files (and an unusable trust store) are reported in the verdict.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path

from csvverify import sm2
from csvverify.certs import CSV_CERT_SIZE, HSK_CEK_SIZE, ROOT_CERT_SIZE, USAGE_CEK, CsvCert, parse_csv_cert
from csvverify.errors import CollateralError, InputError, UsageError
from csvverify.evidence import Envelope
from csvverify.inputs import read_input
from csvverify.store import StoreError
from csvverify.verify import Collateral

# Chip ids come from the (unsigned) report: only plain names may become path components.
_SAFE_CHIP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MEMO_LIMIT = 4096  # chip ids come from reports: bound what is remembered per chip
# trustee, rats-tls / librats, csv-rs (report-format.md §16)
STANDARD_PATHS = ("/opt/hygon/csv/hsk_cek/{chip}/hsk_cek.cert", "/opt/csv/hsk_cek/{chip}/hsk_cek.cert",
                  "/opt/dcu/certs/{chip}_hsk_cek.cert")


def standard_paths() -> list[str]:
    """Path templates of other tools' caches; CSVVERIFY_CERT_PATHS (os.pathsep-separated) replaces them."""
    configured = os.environ.get("CSVVERIFY_CERT_PATHS")
    return [p for p in configured.split(os.pathsep) if p] if configured is not None else list(STANDARD_PATHS)


@dataclass(frozen=True)
class CollateralOptions:
    hsk_cek: Path | None = None
    hsk: Path | None = None
    cek: Path | None = None
    certs_dir: Path | None = None

    @property
    def explicit_files(self) -> bool:
        return any((self.hsk_cek, self.hsk, self.cek))

    @property
    def given(self) -> bool:
        return self.explicit_files or self.certs_dir is not None


def _read_sized(path: Path, size: int, what: str) -> bytes:
    try:
        data = read_input(path)
    except InputError as exc:
        raise CollateralError(f"{what}: {exc.message}", hint=exc.hint) from None
    if len(data) != size:
        raise CollateralError(f"{path}: {len(data)} bytes, but {what} is exactly {size} bytes",
                              hint="hsk_cek.cert is 2916 bytes (HSK 832 ‖ CEK 2084), as the Hygon KDS serves it")
    return data


def _split(blob: bytes, source: str, chip_id: str | None = None, from_evidence: bool = False) -> Collateral:
    return Collateral(blob[:ROOT_CERT_SIZE], blob[ROOT_CERT_SIZE:], source, source, chip_id=chip_id,
                      from_evidence=from_evidence)


def cek_signs(pek: CsvCert):
    """A predicate: does this CEK (2084 bytes) carry the key that signed the PEK?"""
    def check(cek_raw: bytes) -> bool:
        try:
            cek = parse_csv_cert(cek_raw)
        except InputError:
            return False
        return any(sm2.verify(cek.key, cek.uid, pek.signed_bytes, slot.signature.r, slot.signature.s)
                   for slot in pek.slots_for(USAGE_CEK))
    return check


class CollateralFinder:
    """Reads explicit files once; looks up the rest per report."""

    def __init__(self, options: CollateralOptions, store=None):
        if options.hsk_cek and (options.hsk or options.cek):
            raise UsageError("--hsk-cek cannot be combined with --hsk/--cek", hint="give one or the other")
        if bool(options.hsk) != bool(options.cek):
            raise UsageError("--hsk and --cek must be given together", hint="or use --hsk-cek FILE")
        if options.certs_dir and not options.certs_dir.is_dir():
            raise UsageError(f"{options.certs_dir}: --certs needs a directory",
                             hint="a folder holding <chip id>/hsk_cek.cert or hsk_cek.cert")
        self.options = options
        self.store = store
        self._files: dict[tuple, bytes | CollateralError] = {}
        self._found: dict[tuple, Collateral] = {}  # (file key, how, chip id) -> the same Collateral each time
        self._places: dict[str, tuple[bool, list]] = {}  # chip id -> (safe, --certs candidates)
        self.fixed: Collateral | None = None
        if options.hsk_cek:
            self.fixed = _split(_read_sized(options.hsk_cek, HSK_CEK_SIZE, "an hsk_cek.cert"),
                                f"{options.hsk_cek} (--hsk-cek)")
        elif options.hsk and options.cek:
            self.fixed = Collateral(_read_sized(options.hsk, ROOT_CERT_SIZE, "an HSK certificate"),
                                    _read_sized(options.cek, CSV_CERT_SIZE, "a CEK certificate"),
                                    f"{options.hsk} (--hsk)", f"{options.cek} (--cek)")

    def find(self, chip_id: str, pek: CsvCert | None = None, envelope: Envelope | None = None) -> Collateral:
        if self.fixed is not None:
            return self.fixed
        looked: list[str] = []
        safe, candidates = self._certs_dir_places(chip_id)
        if not safe:
            looked.append(f"chip-keyed paths skipped: chip id {chip_id!r} is not a plain name")
        if candidates:
            found = self._first_file(candidates, "--certs", looked)
            if found:
                return found
        if self.store is not None:
            try:
                found = self.store.find(chip_id, cek_signs(pek) if pek is not None else None)
            except StoreError as exc:
                found = None
                looked.append(f"the trust store (unusable: {exc.message})")
            else:
                looked.append(f"the trust store ({self.store.dir})")
            if found:
                return found
        if safe:
            found = self._first_file([(Path(t.format(chip=chip_id)), chip_id) for t in standard_paths()],
                                     "standard path", looked)
            if found:
                return found
        if envelope is not None and envelope.hsk_cek is not None:
            return _split(envelope.hsk_cek, f"the evidence itself ({envelope.shape})", from_evidence=True)
        looked.append("the evidence (it carries no HSK/CEK)")
        return Collateral(looked_in=tuple(looked))

    def _certs_dir_places(self, chip_id: str) -> tuple[bool, list]:
        """Whether the chip id may name a path, and the --certs candidates for it (worked out once per chip)."""
        places = self._places.get(chip_id)
        if places is None:
            safe = bool(_SAFE_CHIP_ID.match(chip_id)) and chip_id not in (".", "..")
            candidates = []
            root = self.options.certs_dir
            if root:
                candidates = ([(root / chip_id / "hsk_cek.cert", chip_id)] if safe else []) + [
                    (root / "hsk_cek.cert", None)]
            if len(self._places) >= _MEMO_LIMIT:
                self._places.clear()
            places = self._places[chip_id] = (safe, candidates)
        return places

    def _first_file(self, candidates, how: str, looked: list[str]) -> Collateral | None:
        for path, chip in candidates:
            try:
                st = os.stat(path)
            except OSError:
                looked.append(str(path))
                continue
            # A batch asks for the same chip's file many times: read it again only when it changed.
            key = (path, st.st_mtime_ns, st.st_size, st.st_ino)
            if key not in self._files:
                try:
                    self._files[key] = _read_sized(path, HSK_CEK_SIZE, "an hsk_cek.cert")
                except CollateralError as exc:
                    self._files[key] = exc
            blob = self._files[key]
            if isinstance(blob, CollateralError):
                looked.append(f"{path} (unusable: {blob.message})")
                continue
            found = self._found.get((key, how, chip))
            if found is None:
                if len(self._found) >= _MEMO_LIMIT:
                    self._found.clear()
                found = self._found[(key, how, chip)] = _split(blob, f"{path} ({how})", chip_id=chip)
            return found
        return None
