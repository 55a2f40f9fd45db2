"""What QEMU reads from an OVMF image: the footer GUID table and, for our warnings, the image kind.

The firmware is measured whole; nothing here changes the bytes that are hashed. QEMU parses the footer
table only to find the kernel-hashes area (and the SEV-ES reset vector), see ``pc_sysfw_ovmf.c``.

Footer layout, from the end of the file: 32 bytes that are not part of the table, then the footer
entry ``u16 total_len ‖ GUID`` and, before it, entries ``payload ‖ u16 len ‖ GUID`` walked backwards.
``len`` counts the payload plus the 18-byte trailer; ``total_len`` counts all entries plus the footer.
"""

import struct
import uuid
from dataclasses import dataclass, field

FOOTER_GUID = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d")
HASH_TABLE_AREA_GUID = uuid.UUID("7255371f-3a3b-4b04-927b-1da6efa8d454")
SEV_ES_RESET_BLOCK_GUID = uuid.UUID("00f771de-1a7e-4fcb-890e-68c77e2fb44e")
NV_STORE_FV_GUID = uuid.UUID("fff12b8d-7696-4c8b-a985-2747075b4f50")  # gEfiSystemNvDataFvGuid

TRAILER = 18  # u16 length + 16-byte GUID
FOOTER_END_GAP = 32  # the table ends this many bytes before the end of the file
MAX_TABLE_TAIL = FOOTER_END_GAP + 0xFFFF  # total_len is a u16
FV_HEADER_PROBE = 64


@dataclass(frozen=True)
class FooterTable:
    """The OVMF footer GUID table. ``problem`` says why it is missing or only partly readable."""

    entries: dict = field(default_factory=dict)  # uuid.UUID -> payload bytes
    problem: str | None = None

    @property
    def present(self) -> bool:
        return bool(self.entries)


@dataclass(frozen=True)
class HashTableArea:
    base: int
    size: int


def parse_footer_table(tail: bytes, file_size: int) -> FooterTable:
    """Parse the footer table from the last bytes of a firmware file (at most ``MAX_TABLE_TAIL``)."""
    if file_size < FOOTER_END_GAP + TRAILER:
        return FooterTable(problem="the file is too small to hold an OVMF footer table")
    end = len(tail) - FOOTER_END_GAP
    total_len, guid = _trailer(tail, end)
    if guid != FOOTER_GUID:
        return FooterTable(problem=f"no OVMF footer table (GUID {FOOTER_GUID} not found "
                                   f"{FOOTER_END_GAP + TRAILER} bytes before the end of the file)")
    body_len = total_len - TRAILER
    body_end = end - TRAILER
    if body_len <= 0 or body_len > body_end:
        return FooterTable(problem=f"the OVMF footer table has an invalid length ({total_len})")
    entries = {}
    pos = body_end
    while pos - (body_end - body_len) >= TRAILER:
        length, guid = _trailer(tail, pos)
        if length < TRAILER or pos - length < body_end - body_len:
            return FooterTable(entries, f"malformed OVMF footer entry {guid} (length {length}) "
                                        f"{file_size - (len(tail) - pos)} bytes into the file")
        entries.setdefault(guid, bytes(tail[pos - length: pos - TRAILER]))
        pos -= length
    return FooterTable(entries)


HASH_AREA_FIELDS = 8  # the u32 base and u32 size QEMU reads from the kernel-hashes entry


def hash_table_area(table: FooterTable) -> HashTableArea | None:
    payload = table.entries.get(HASH_TABLE_AREA_GUID)
    if payload is None or len(payload) < HASH_AREA_FIELDS:
        return None
    return HashTableArea(*struct.unpack_from("<II", payload))


def short_hash_area(table: FooterTable) -> int | None:
    """The length of a kernel-hashes entry too short to hold its fields; None when absent or long enough."""
    payload = table.entries.get(HASH_TABLE_AREA_GUID)
    return len(payload) if payload is not None and len(payload) < HASH_AREA_FIELDS else None


def sev_es_reset_vector(table: FooterTable) -> int | None:
    payload = table.entries.get(SEV_ES_RESET_BLOCK_GUID)
    if payload is None or len(payload) < 4:
        return None
    return struct.unpack_from("<I", payload)[0]


def variable_store_size(head: bytes) -> int | None:
    """Size of the UEFI variable store at the start of the image (OVMF_VARS, or the front of a
    combined OVMF.fd), from its firmware-volume header; None when the image does not start with one."""
    if len(head) < FV_HEADER_PROBE or head[40:44] != b"_FVH":
        return None
    if uuid.UUID(bytes_le=bytes(head[16:32])) != NV_STORE_FV_GUID:
        return None
    return struct.unpack_from("<Q", head, 32)[0]


def encode_footer_table(entries: list[tuple[uuid.UUID, bytes]]) -> bytes:
    """The last bytes of an image carrying ``entries`` in a footer table (the inverse of the parser).

    Entries are given in file order; the result ends with the 32 bytes that follow the table (zeros
    here; a real OVMF has its reset vector there). Used to build synthetic firmware.
    """
    body = b"".join(payload + struct.pack("<H", len(payload) + TRAILER) + guid.bytes_le
                    for guid, payload in entries)
    footer = struct.pack("<H", len(body) + TRAILER) + FOOTER_GUID.bytes_le
    return body + footer + bytes(FOOTER_END_GAP)


def _trailer(buf: bytes, end: int) -> tuple[int, uuid.UUID]:
    length = struct.unpack_from("<H", buf, end - TRAILER)[0]
    return length, uuid.UUID(bytes_le=bytes(buf[end - 16: end]))
