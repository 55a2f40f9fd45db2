"""How QEMU's ``x86_load_linux`` treats a ``-kernel`` file, which decides whether hashes are added.

QEMU checks, in this order: the bzImage magic ``HdrS`` at 0x202 (Linux boot protocol); a multiboot
header in the first 8 KiB (then it boots through its multiboot loader and returns before adding kernel
hashes); an ELF file (PVH boot, same early return, or an error without the PVH note). Anything else is
loaded as a pre-2.00 "zImage", which QEMU still hashes but refuses with an initrd or when the file is
shorter than its setup sectors.
"""

import struct
from dataclasses import dataclass

HEAD_SIZE = 8192  # QEMU reads this much of the kernel to classify it
MULTIBOOT_MAGIC = 0x1BADB002
_MULTIBOOT_MAGIC_BYTES = struct.pack("<I", MULTIBOOT_MAGIC)


@dataclass(frozen=True)
class KernelKind:
    kind: str  # "bzImage", "multiboot", "elf", "other" or "empty"
    protocol: int | None = None  # Linux boot protocol version (bzImage only), e.g. 0x20f

    @property
    def hashes_added(self) -> bool:
        """Whether QEMU adds the kernel-hashes table for this kernel when kernel-hashes=on."""
        return self.kind not in ("multiboot", "elf")

    @property
    def protocol_text(self) -> str | None:
        return None if self.protocol is None else f"{self.protocol >> 8}.{self.protocol & 0xFF:02d}"


def classify_kernel(head: bytes, size: int) -> KernelKind:
    if size == 0:
        return KernelKind("empty")
    if len(head) >= 0x208 and head[0x202:0x206] == b"HdrS":
        return KernelKind("bzImage", struct.unpack_from("<H", head, 0x206)[0])
    if _has_multiboot_header(head):
        return KernelKind("multiboot")
    if head[:4] == b"\x7fELF":
        return KernelKind("elf")
    return KernelKind("other")


def kernel_warning(kind: KernelKind, label: str, kernel_hashes: bool) -> str | None:
    """The warning to show for a kernel QEMU does not treat as an ordinary bzImage, if any."""
    if kind.kind == "bzImage" or not kernel_hashes:
        return None
    if not kind.hashes_added:
        loader = "multiboot loader" if kind.kind == "multiboot" else "PVH (ELF) loader"
        return (f"{label} is not a Linux bzImage but a {kind.kind} image: QEMU boots it through its "
                f"{loader} and adds no kernel hashes, so the table is left out of this digest")
    if kind.kind == "empty":
        return (f"{label} is empty: QEMU refuses it ('invalid kernel header'); the table is built "
                f"from it anyway, as the reference tools do")
    return (f"{label} is not a Linux bzImage (no 'HdrS' at offset 0x202): QEMU loads it as a "
            f"pre-2.00 zImage and refuses it with an initrd or when it is shorter than its setup "
            f"sectors; the table is included as if QEMU had accepted it")


def _has_multiboot_header(head: bytes) -> bool:
    # Same scan as QEMU's load_multiboot: 4-byte aligned, magic + flags + checksum == 0 (mod 2^32).
    limit = min(len(head), HEAD_SIZE) - 48
    pos = head.find(_MULTIBOOT_MAGIC_BYTES, 0, limit + 4)
    while 0 <= pos < limit:
        magic, flags, checksum = struct.unpack_from("<III", head, pos)
        if pos % 4 == 0 and (magic + flags + checksum) & 0xFFFFFFFF == 0:
            return True
        pos = head.find(_MULTIBOOT_MAGIC_BYTES, pos + 1, limit + 4)
    return False
