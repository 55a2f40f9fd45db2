"""Finding HSK/CEK certificates for --chain on the local disk (never on the network).

Sources, in order: explicit files (--hsk-cek, or --hsk with --cek), then a directory given with --certs
(``DIR/<chip id>/hsk_cek.cert``, then ``DIR/hsk_cek.cert``). Explicit files that are unusable stop the
command with a clear error; a directory entry that is unusable is reported in the verdict.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from csvverify.certs import CSV_CERT_SIZE, HSK_CEK_SIZE, ROOT_CERT_SIZE
from csvverify.errors import CollateralError, InputError
from csvverify.inputs import read_input
from csvverify.verify import Collateral

# Chip ids come from the (unsigned) report: only plain names may become path components.
_SAFE_CHIP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class CollateralOptions:
    hsk_cek: Path | None = None
    hsk: Path | None = None
    cek: Path | None = None
    certs_dir: Path | None = None

    @property
    def given(self) -> bool:
        return any((self.hsk_cek, self.hsk, self.cek, self.certs_dir))


def _read_sized(path: Path, size: int, what: str) -> bytes:
    try:
        data = read_input(path)
    except InputError as exc:
        raise CollateralError(f"{what}: {exc.message}", hint=exc.hint) from None
    if len(data) != size:
        raise CollateralError(f"{path}: {len(data)} bytes, but {what} is exactly {size} bytes",
                              hint="hsk_cek.cert is 2916 bytes (HSK 832 ‖ CEK 2084), as the Hygon KDS serves it")
    return data


class ExplicitCollateral:
    """Collateral named by flags, read once and shared by every input of a command."""

    def __init__(self, options: CollateralOptions):
        if options.hsk_cek and (options.hsk or options.cek):
            raise CollateralError("--hsk-cek cannot be combined with --hsk/--cek", hint="give one or the other")
        if bool(options.hsk) != bool(options.cek):
            raise CollateralError("--hsk and --cek must be given together", hint="or use --hsk-cek FILE")
        self.options = options
        self.fixed: Collateral | None = None
        if options.hsk_cek:
            blob = _read_sized(options.hsk_cek, HSK_CEK_SIZE, "an hsk_cek.cert")
            src = f"{options.hsk_cek} (--hsk-cek)"
            self.fixed = Collateral(blob[:ROOT_CERT_SIZE], blob[ROOT_CERT_SIZE:], src, src)
        elif options.hsk and options.cek:
            self.fixed = Collateral(_read_sized(options.hsk, ROOT_CERT_SIZE, "an HSK certificate"),
                                    _read_sized(options.cek, CSV_CERT_SIZE, "a CEK certificate"),
                                    f"{options.hsk} (--hsk)", f"{options.cek} (--cek)")
        if options.certs_dir and not options.certs_dir.is_dir():
            raise CollateralError(f"{options.certs_dir}: --certs needs a directory",
                                  hint="a folder holding <chip id>/hsk_cek.cert or hsk_cek.cert")

    def for_chip(self, chip_id: str) -> Collateral:
        if self.fixed is not None:
            return self.fixed
        looked: list[str] = []
        if self.options.certs_dir:
            found = _from_dir(self.options.certs_dir, chip_id, looked)
            if found is not None:
                return found
        if not self.options.given:
            looked.append("no place: --chain needs --hsk-cek FILE, --hsk and --cek, or --certs DIR")
        return Collateral(looked_in=tuple(looked))


def _from_dir(root: Path, chip_id: str, looked: list[str]) -> Collateral | None:
    candidates = []
    if _SAFE_CHIP_ID.match(chip_id) and chip_id not in (".", ".."):
        candidates.append(root / chip_id / "hsk_cek.cert")
    else:
        looked.append(f"{root}/<chip id> skipped: chip id {chip_id!r} is not a plain name")
    candidates.append(root / "hsk_cek.cert")
    for path in candidates:
        if not path.is_file():
            looked.append(str(path))
            continue
        try:
            blob = _read_sized(path, HSK_CEK_SIZE, "an hsk_cek.cert")
        except CollateralError as exc:
            looked.append(f"{path} (unusable: {exc.message})")
            continue
        src = f"{path} (--certs)"
        return Collateral(blob[:ROOT_CERT_SIZE], blob[ROOT_CERT_SIZE:], src, src)
    return None
