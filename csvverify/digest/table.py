"""QEMU's SEV kernel-hashes table (``PaddedSevHashTable`` in ``target/i386/sev.c``): 176 bytes.

    GUID_TABLE | u16 168 |
    GUID_CMDLINE | u16 50 | SHA-256(cmdline ‖ 00) |
    GUID_INITRD  | u16 50 | SHA-256(initrd) |
    GUID_KERNEL  | u16 50 | SHA-256(kernel) |
    8 zero bytes

GUIDs are in EFI byte order (``uuid.UUID(...).bytes_le``). The entries are SHA-256 for CSV too; only the
outer launch digest is SM3.
"""

import struct
import uuid
from dataclasses import dataclass

TABLE_GUID = uuid.UUID("9438d606-4f22-4cc9-b479-a793d411fd21")
CMDLINE_GUID = uuid.UUID("97d02dd8-bd20-4c94-aa78-e7714d36ab2a")
INITRD_GUID = uuid.UUID("44baf731-3a2f-4bd7-9af1-41e29169781d")
KERNEL_GUID = uuid.UUID("4de79437-abd2-427f-b835-d5b172d2045b")

ENTRY_ORDER = (("cmdline", CMDLINE_GUID), ("initrd", INITRD_GUID), ("kernel", KERNEL_GUID))
ENTRY_SIZE = 16 + 2 + 32
TABLE_SIZE = 16 + 2 + len(ENTRY_ORDER) * ENTRY_SIZE  # 168, the length field's value
PADDED_TABLE_SIZE = 176  # the bytes measured: padded to a multiple of 16


@dataclass(frozen=True)
class TableField:
    offset: int
    data: bytes
    meaning: str


def build_hash_table(cmdline_sha256: bytes, initrd_sha256: bytes, kernel_sha256: bytes) -> bytes:
    hashes = {"cmdline": cmdline_sha256, "initrd": initrd_sha256, "kernel": kernel_sha256}
    out = bytearray(TABLE_GUID.bytes_le + struct.pack("<H", TABLE_SIZE))
    for name, guid in ENTRY_ORDER:
        digest = hashes[name]
        if len(digest) != 32:
            raise ValueError(f"{name} hash must be 32 bytes, got {len(digest)}")
        out += guid.bytes_le + struct.pack("<H", ENTRY_SIZE) + digest
    out += bytes(PADDED_TABLE_SIZE - len(out))
    return bytes(out)


def table_fields(table: bytes) -> list[TableField]:
    """The table split into its fields, each with a one-line meaning (for ``--explain``)."""
    fields = [TableField(0, table[0:16], f"table GUID {TABLE_GUID}"),
              TableField(16, table[16:18], f"table length {struct.unpack_from('<H', table, 16)[0]}")]
    offset = 18
    for name, guid in ENTRY_ORDER:
        fields += [TableField(offset, table[offset: offset + 16], f"{name} GUID {guid}"),
                   TableField(offset + 16, table[offset + 16: offset + 18],
                              f"{name} entry length {struct.unpack_from('<H', table, offset + 16)[0]}"),
                   TableField(offset + 18, table[offset + 18: offset + ENTRY_SIZE], f"SHA-256 of the {name}")]
        offset += ENTRY_SIZE
    fields.append(TableField(offset, table[offset:], "padding to a multiple of 16"))
    return fields
