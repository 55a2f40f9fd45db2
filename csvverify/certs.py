"""Hygon certificates: root-style (HRK, HSK; 832 bytes) and CSV certificates (CEK, PEK; 2084 bytes).

Parsing is pure and strict about sizes; semantic rules (usages, issuers, signatures) are checked in
``csvverify.verify`` so that every rule shows up as its own check in a verdict.
"""

import re
from dataclasses import dataclass, field
from functools import lru_cache

from csvverify.errors import InputError
from csvverify.sm2 import PublicKey

ROOT_CERT_SIZE = 832
CSV_CERT_SIZE = 2084
HSK_CEK_SIZE = ROOT_CERT_SIZE + CSV_CERT_SIZE
ROOT_SIGNED = 576
CSV_SIGNED = 1044
UID_MAX = 254

USAGE_HRK = 0x0000
USAGE_HSK = 0x0013
USAGE_INVALID = 0x1000
USAGE_OCA = 0x1001
USAGE_PEK = 0x1002
USAGE_PDH = 0x1003
USAGE_CEK = 0x1004
ALGO_SM2_SA = 4
CURVE_SM2 = 3

USAGE_NAMES = {USAGE_HRK: "HRK", USAGE_HSK: "HSK", USAGE_INVALID: "INVALID", USAGE_OCA: "OCA",
               USAGE_PEK: "PEK", USAGE_PDH: "PDH", USAGE_CEK: "CEK"}


def u16(b: bytes, off: int) -> int:
    return int.from_bytes(b[off:off + 2], "little")


def u32(b: bytes, off: int) -> int:
    return int.from_bytes(b[off:off + 4], "little")


def le72(b: bytes, off: int) -> int:
    """A 72-byte little-endian field read whole: non-zero padding makes the value too large to be valid."""
    return int.from_bytes(b[off:off + 72], "little")


_NOT_PRINTABLE = re.compile(rb"[^\x20-\x7e]")


def ascii_text(raw: bytes) -> str:
    """Bytes from a report or certificate as text that is safe to print: printable ASCII (0x20-0x7e) as is,
    every other byte (control characters, DEL, 0x80 and above) as \\xNN."""
    return _NOT_PRINTABLE.sub(lambda m: f"\\x{m[0][0]:02x}".encode(), raw).decode("ascii")


def usage_name(usage: int) -> str:
    return USAGE_NAMES.get(usage, "unknown")


@dataclass(frozen=True)
class Signature:
    r: int
    s: int
    offset: int  # where r starts; s follows 72 bytes later
    padding_faults: tuple[str, ...] = ()


@dataclass(frozen=True)
class SignatureSlot:
    index: int  # 1 or 2
    usage: int
    algo: int
    signature: Signature


@dataclass(frozen=True)
class _KeyFields:
    raw: bytes
    curve_id: int
    key: PublicKey
    uid: bytes
    uid_len: int
    key_offset: int
    padding_faults: tuple[str, ...] = field(default=())

    @property
    def uid_text(self) -> str:
        return ascii_text(self.uid)


@dataclass(frozen=True)
class RootCert(_KeyFields):
    """HRK or HSK (832 bytes, signed range [0, 576))."""

    version: int = 0
    key_id: bytes = b""
    certifying_id: bytes = b""
    key_usage: int = 0
    signature: Signature | None = None
    reserved_nonzero: tuple[str, ...] = ()

    @property
    def signed_bytes(self) -> bytes:
        return self.raw[:ROOT_SIGNED]


@dataclass(frozen=True)
class CsvCert(_KeyFields):
    """CEK or PEK (2084 bytes, signed range [0, 1044), two signature slots outside it)."""

    version: int = 0
    api_major: int = 0
    api_minor: int = 0
    pubkey_usage: int = 0
    pubkey_algo: int = 0
    certifying_id: bytes = b""
    slots: tuple[SignatureSlot, ...] = ()
    reserved_nonzero: tuple[str, ...] = ()

    @property
    def signed_bytes(self) -> bytes:
        return self.raw[:CSV_SIGNED]

    def slots_for(self, usage: int) -> list[SignatureSlot]:
        return [s for s in self.slots if s.usage == usage and s.algo == ALGO_SM2_SA]


def _padding_faults(raw: bytes, fields: list[tuple[str, int]]) -> tuple[str, ...]:
    """Names of 72-byte fields whose 40 high bytes (outside every signature) are not zero."""
    return tuple(f"{name} padding at [{off + 32},{off + 72}) is not zero"
                 for name, off in fields if any(raw[off + 32:off + 72]))


def _nonzero(raw: bytes, areas: list[tuple[str, int, int]]) -> tuple[str, ...]:
    return tuple(f"{name} [{a},{b}) is not zero" for name, a, b in areas if any(raw[a:b]))


def read_signature(raw: bytes, off: int, name: str) -> Signature:
    """r[72] ‖ s[72] at off, with any non-zero padding named."""
    return Signature(le72(raw, off), le72(raw, off + 72), off,
                     _padding_faults(raw, [(f"{name} r", off), (f"{name} s", off + 72)]))


def _check_size(raw: bytes, size: int, what: str, source: str) -> None:
    if len(raw) != size:
        raise InputError(f"{source}: {len(raw)} bytes, but a {what} is exactly {size} bytes",
                         hint=f"pass the {what} file itself (not a bundle or text encoding)")


def _uid(raw: bytes, len_off: int, what: str, source: str) -> tuple[int, bytes]:
    uid_len = u16(raw, len_off)
    if uid_len > UID_MAX:
        raise InputError(f"{source}: {what} uid_len {uid_len} at offset {len_off} exceeds the "
                         f"{UID_MAX}-byte user-id field", hint="the certificate is malformed or not a Hygon certificate")
    return uid_len, raw[len_off + 2:len_off + 2 + uid_len]


def parse_root_cert(raw: bytes, source: str = "root certificate") -> RootCert:
    return _parse_root_cert(bytes(raw), source)


def parse_csv_cert(raw: bytes, source: str = "CSV certificate") -> CsvCert:
    return _parse_csv_cert(bytes(raw), source)


# Parsing is pure and the same HSK/CEK/PEK bytes recur in every report of a chip: remember results
# (errors are not remembered, so they are raised again with their message every time).
@lru_cache(maxsize=512)
def _parse_root_cert(raw: bytes, source: str) -> RootCert:
    _check_size(raw, ROOT_CERT_SIZE, "root-style certificate (HRK/HSK)", source)
    uid_len, uid = _uid(raw, 212, "root certificate", source)
    return RootCert(
        raw=raw, version=u32(raw, 0), key_id=raw[4:20], certifying_id=raw[20:36], key_usage=u32(raw, 36),
        curve_id=u32(raw, 64), key=PublicKey(le72(raw, 68), le72(raw, 140)), key_offset=68,
        uid_len=uid_len, uid=uid,
        signature=read_signature(raw, 576, "signature"),
        padding_faults=_padding_faults(raw, [("qx", 68), ("qy", 140)]),
        reserved_nonzero=_nonzero(raw, [("reserved", 40, 64), ("uid tail", 214 + uid_len, 468),
                                        ("reserved", 468, 576), ("reserved", 720, 832)]),
    )


_SLOT_OFFSETS = (1044, 1564)


@lru_cache(maxsize=512)
def _parse_csv_cert(raw: bytes, source: str) -> CsvCert:
    _check_size(raw, CSV_CERT_SIZE, "CSV certificate (CEK/PEK)", source)
    uid_len, uid = _uid(raw, 164, "CSV certificate", source)
    slots = tuple(
        SignatureSlot(index=i + 1, usage=u32(raw, off), algo=u32(raw, off + 4),
                      signature=read_signature(raw, off + 8, f"slot {i + 1}"))
        for i, off in enumerate(_SLOT_OFFSETS)
    )
    # A slot marked empty (usage INVALID) holds nothing: its algo word and signature are reserved space.
    empty = [(f"slot {s.index} (marked empty, usage {USAGE_INVALID:#06x}) algo and signature", off + 4, off + 152)
             for s, off in zip(slots, _SLOT_OFFSETS) if s.usage == USAGE_INVALID]
    return CsvCert(
        raw=raw, version=u32(raw, 0), api_major=raw[4], api_minor=raw[5], pubkey_usage=u32(raw, 8),
        pubkey_algo=u32(raw, 12), curve_id=u32(raw, 16), key=PublicKey(le72(raw, 20), le72(raw, 92)),
        key_offset=20, uid_len=uid_len, uid=uid, certifying_id=raw[420:436], slots=slots,
        padding_faults=_padding_faults(raw, [("qx", 20), ("qy", 92)]),
        reserved_nonzero=_nonzero(raw, [("reserved", 6, 8), ("uid tail", 166 + uid_len, 420),
                                        ("reserved", 436, 1044), ("slot 1 reserved", 1196, 1564),
                                        ("slot 2 reserved", 1716, 2084)] + empty),
    )


def split_hsk_cek(raw: bytes, source: str = "hsk_cek.cert") -> tuple[bytes, bytes]:
    """The KDS download format: HSK (832) followed by CEK (2084)."""
    _check_size(raw, HSK_CEK_SIZE, "hsk_cek.cert (HSK followed by CEK)", source)
    return raw[:ROOT_CERT_SIZE], raw[ROOT_CERT_SIZE:]
