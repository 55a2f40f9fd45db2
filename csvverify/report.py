"""Attestation report layouts V1 (2548 bytes, anonce-obfuscated) and V2/V3 (3380 bytes, in clear).

``parse_report`` takes the bytes of one report (or its 4096-byte page) and returns a ``Report`` holding
both the decoded fields and the exact raw bytes the signature and MAC are computed over. A raw page
carries no version tag, so the layout is told apart structurally (see ``detect_layout``); how the
version was decided is recorded in ``Report.layout_source``.
"""

from dataclasses import dataclass
from functools import cached_property, lru_cache

from csvverify.certs import (CSV_CERT_SIZE, USAGE_PEK, CsvCert, Signature, ascii_text, parse_csv_cert,
                           read_signature, u32)
from csvverify.errors import InputError

PAGE_SIZE = 4096
V1_SIZE = 2548
EXT_SIZE = 3380
EXT_MAGIC = b"ATTESTATION_EXT\0"


@dataclass(frozen=True)
class Layout:
    """Offsets that differ between V1 and V2/V3; the signer block is pek ‖ sn ‖ sealing key ‖ mac."""

    size: int
    signed_end: int  # the PEK signs raw[0:signed_end]
    sig_offset: int  # r[72] ‖ s[72]
    signer_offset: int  # start of pek_cert

    @property
    def sn_offset(self) -> int:
        return self.signer_offset + CSV_CERT_SIZE

    @property
    def sealing_key_offset(self) -> int:
        return self.sn_offset + 64

    @property
    def mac_offset(self) -> int:
        return self.sealing_key_offset + 32


V1 = Layout(size=V1_SIZE, signed_end=180, sig_offset=192, signer_offset=336)
EXT = Layout(size=EXT_SIZE, signed_end=1024, sig_offset=1024, signer_offset=1168)

# V1 XOR ranges: the TEE info up to (not including) anonce, and pek_cert ‖ sn.
_V1_XOR_RANGES = ((0, 188), (336, 2484))


@dataclass(frozen=True)
class Report:
    raw: bytes  # exactly the layout's bytes as stored (page padding removed)
    version: int  # 1, 2 or 3
    layout_source: str  # how the version was decided
    anonce: int
    signer_block_clear: bool  # V1 evidence whose PEK/SN were already de-obfuscated by a collector
    user_pubkey_digest: bytes
    vm_id: bytes
    vm_version: bytes
    report_data: bytes
    mnonce: bytes
    measure: bytes
    policy: int
    sig_usage: int
    sig_algo: int
    signature: Signature
    pek_raw: bytes  # de-obfuscated PEK certificate bytes
    sn: bytes  # de-obfuscated, 64 bytes
    sealing_key: bytes
    mac: bytes
    trailing: bytes = b""  # page padding after the layout
    layout_from_size: bool = False  # V1 or V2/V3 was decided by the input's size alone, not by a probe
    build: int | None = None
    rtmr_version: int | None = None
    rtmrs: tuple[bytes, ...] = ()
    host_data: bytes | None = None  # V3 only

    @property
    def layout(self) -> Layout:
        return V1 if self.version == 1 else EXT

    @cached_property  # asked for several times per verdict; the report never changes
    def chip_id(self) -> str:
        """The serial number up to its first NUL; unsigned, so any byte outside 0x20-0x7e is shown as \\xNN."""
        return ascii_text(self.sn.split(b"\0")[0])

    @property
    def pek_words(self) -> tuple[int, int, int]:
        """pubkey_usage, pubkey_algo and curve_id of the (de-obfuscated) PEK at this layout's offset."""
        return u32(self.pek_raw, 8), u32(self.pek_raw, 12), u32(self.pek_raw, 16)

    @property
    def pek_at_layout(self) -> bool:
        """Whether a PEK sits where the layout puts it: the structural probe ``detect_layout`` uses for pages."""
        return _pek_words_ok(self.pek_words)

    @property
    def signed_bytes(self) -> bytes:
        return self.raw[:self.layout.signed_end]

    @property
    def mac_message(self) -> bytes:
        """The signer block as the firmware produced it (re-obfuscated if a collector had cleared it)."""
        lay = self.layout
        block = self.raw[lay.signer_offset:lay.mac_offset]
        if self.version == 1 and self.signer_block_clear:
            end = lay.sealing_key_offset - lay.signer_offset
            block = _xor(block[:end], self.anonce, lay.signer_offset) + block[end:]
        return block

    @property
    def sealing_key_present(self) -> bool:
        return any(self.sealing_key)

    def pek(self, source: str = "report") -> CsvCert:
        return parse_csv_cert(self.pek_raw, f"{source}: PEK certificate")

    def summary(self) -> dict:
        """The decoded fields as JSON-ready values (the sealing key is reduced to present / blanked)."""
        pek_api = None
        try:
            pek = self.pek()
            pek_api = f"{pek.api_major}.{pek.api_minor}"
        except InputError:
            pass
        fields = {
            "version": self.version,
            "layout_source": self.layout_source,
            "size": len(self.raw) + len(self.trailing),
            "chip_id": self.chip_id,
            "anonce": f"{self.anonce:#010x}" if self.version == 1 else None,
            "user_pubkey_digest": self.user_pubkey_digest.hex(),
            "vm_id": self.vm_id.hex(),
            "vm_version": self.vm_version.hex(),
            "user_data": self.report_data.hex(),
            "mnonce": self.mnonce.hex(),
            "measure": self.measure.hex(),
            "policy": self.policy,
            "sig_usage": self.sig_usage,
            "sig_algo": self.sig_algo,
            "pek_api_version": pek_api,
            "sealing_key": "present" if self.sealing_key_present else "blanked",
            "mac": self.mac.hex(),
        }
        if self.version != 1:
            fields.update(build=self.build, rtmr_version=self.rtmr_version, rtmrs=[r.hex() for r in self.rtmrs],
                          host_data=self.host_data.hex() if self.host_data is not None else None)
        return fields


@lru_cache(maxsize=8)
def _word_ones(words: int) -> int:
    """The little-endian integer of ``words`` 32-bit words of value 1: times a 32-bit value, that value repeated."""
    return int.from_bytes(b"\1\0\0\0" * words, "little")


def _xor(data: bytes, anonce: int, start: int) -> bytes:
    """XOR with le32(anonce) repeated, aligned to report offset 0 (start is the data's offset)."""
    if not anonce:
        return bytes(data)
    size = len(data)
    if not start % 4 and not size % 4:  # whole words (both V1 ranges): the stream is anonce * 0x..00010001
        return (int.from_bytes(data, "little") ^ anonce * _word_ones(size // 4)).to_bytes(size, "little")
    pad = anonce.to_bytes(4, "little")
    shift = start % 4
    stream = (pad[shift:] + pad * ((len(data) + 7) // 4))[:len(data)]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(len(data), "little")


def deobfuscate_v1(raw: bytes) -> bytes:
    """The V1 report with every obfuscated field XORed clear (anonce, signature, key and MAC untouched)."""
    anonce = u32(raw, 188)
    out = bytearray(raw)
    for a, b in _V1_XOR_RANGES:
        out[a:b] = _xor(raw[a:b], anonce, a)
    return bytes(out)


def _pek_words_ok(words: tuple[int, int, int]) -> bool:
    return words == (USAGE_PEK, 4, 3)  # pubkey_usage PEK, algo SM2-SA, curve SM2


def _v1_probe(page: bytes) -> str | None:
    """'obfuscated' or 'clear' when a V1 PEK sits at 336, else None."""
    anonce = u32(page, 188)
    words = tuple(u32(page, off) for off in (344, 348, 352))
    if _pek_words_ok(tuple(w ^ anonce for w in words)):
        return "obfuscated"
    if _pek_words_ok(words):
        return "clear"
    return None


def _ext_probe(page: bytes) -> bool:
    return len(page) >= EXT_SIZE and _pek_words_ok(tuple(u32(page, off) for off in (1176, 1180, 1184)))


def detect_layout(data: bytes, source: str) -> int:
    """1 or 2 (V2 and V3 share a layout; ``ext_version`` tells them apart where it can)."""
    size = len(data)
    if size == V1_SIZE:
        return 1
    if size == EXT_SIZE:
        return 2
    if size != PAGE_SIZE:
        raise InputError(f"{source}: {size} bytes is not a report size (V1 report 2548, V2/V3 report 3380, "
                         f"or a 4096-byte page)", hint="check the file is a report and not truncated or padded")
    v1 = _v1_probe(data) is not None and not any(data[V1_SIZE:])
    ext = _ext_probe(data) and not any(data[EXT_SIZE:])
    if v1 and ext:
        raise InputError(f"{source}: the page reads both as V1 and as V2/V3",
                         hint="say which with --report-version 1|2|3")
    if v1:
        return 1
    if ext:
        return 2
    raise InputError(f"{source}: 4096-byte page with no PEK certificate at offset 336 (V1) or 1168 (V2/V3) "
                     f"and zero padding after it", hint="not a CSV report page; if it is, pass --report-version")


def ext_version(raw: bytes) -> tuple[int, str]:
    """V2 vs V3 for bare bytes: V3 puts host_data at [960,1024), which V2 leaves reserved (zero)."""
    if any(raw[960:1024]):
        return 3, "probe: bytes [960,1024) are non-zero, read as V3 host_data"
    return 2, "probe: bytes [960,1024) are zero, read as V2 (a V3 report with zero host_data looks the same)"


def parse_report(data: bytes, *, version: int | None = None, source: str = "report",
                 version_source: str | None = None) -> Report:
    """Parse one report (raw layout or page). ``version`` forces the layout (1, 2 or 3)."""
    data = bytes(data)
    if version is None:
        family = detect_layout(data, source)
        how = f"size {len(data)}" if len(data) != PAGE_SIZE else "probe: PEK found at its layout offset"
    else:
        if version not in (1, 2, 3):
            raise InputError(f"{source}: report version {version} is not 1, 2 or 3")
        family = 1 if version == 1 else 2
        need = V1_SIZE if family == 1 else EXT_SIZE
        if len(data) not in (need, PAGE_SIZE):
            raise InputError(f"{source}: {len(data)} bytes, but a V{version} report is {need} bytes "
                             f"(or a {PAGE_SIZE}-byte page)")
        how = version_source or "given"
    from_size = version is None and len(data) != PAGE_SIZE
    return _parse_v1(data, how, from_size) if family == 1 else _parse_ext(data, version, how, from_size)


def _parse_v1(data: bytes, how: str, from_size: bool) -> Report:
    raw, trailing = data[:V1_SIZE], data[V1_SIZE:]
    clear = deobfuscate_v1(raw)
    anonce = u32(raw, 188)
    signer_clear = anonce != 0 and _v1_probe(raw) == "clear"
    signer = raw if signer_clear else clear
    return Report(
        raw=raw, version=1, layout_source=how, anonce=anonce, signer_block_clear=signer_clear,
        user_pubkey_digest=clear[0:32], vm_id=clear[32:48], vm_version=clear[48:64],
        report_data=clear[64:128], mnonce=clear[128:144], measure=clear[144:176], policy=u32(clear, 176),
        sig_usage=u32(clear, 180), sig_algo=u32(clear, 184),
        signature=read_signature(raw, V1.sig_offset, "report signature"),
        pek_raw=signer[336:2420], sn=signer[2420:2484], sealing_key=raw[2484:2516], mac=raw[2516:2548],
        trailing=trailing, layout_from_size=from_size,
    )


def _parse_ext(data: bytes, version: int | None, how: str, from_size: bool) -> Report:
    raw, trailing = data[:EXT_SIZE], data[EXT_SIZE:]
    if version is None:
        version, how = ext_version(raw)
    return Report(
        raw=raw, version=version, layout_source=how, anonce=0, signer_block_clear=False,
        user_pubkey_digest=raw[0:32], vm_id=raw[32:48], vm_version=raw[48:64], report_data=raw[64:128],
        mnonce=raw[128:144], measure=raw[144:176], policy=u32(raw, 176), sig_usage=u32(raw, 180),
        sig_algo=u32(raw, 184), build=u32(raw, 188), rtmr_version=int.from_bytes(raw[192:194], "little"),
        rtmrs=tuple(raw[208 + 32 * i:240 + 32 * i] for i in range(5)),
        host_data=raw[960:1024] if version == 3 else None,
        signature=read_signature(raw, EXT.sig_offset, "report signature"),
        pek_raw=raw[1168:3252], sn=raw[3252:3316], sealing_key=raw[3316:3348], mac=raw[3348:3380],
        trailing=trailing, layout_from_size=from_size,
    )

