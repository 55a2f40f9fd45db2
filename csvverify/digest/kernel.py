"""How QEMU's ``x86_load_linux`` treats a ``-kernel`` file, which decides whether hashes are added.

QEMU checks, in this order: the bzImage magic ``HdrS`` at 0x202 (Linux boot protocol); a multiboot
header in the first 8 KiB (then it boots through its multiboot loader and returns before adding kernel
hashes); an ELF file (``load_elfboot``: PVH boot, same early return, but only when the ELF carries a
PVH entry note, and QEMU exits with an error otherwise). Anything else is loaded as a pre-2.00
"zImage", which QEMU still hashes but refuses with an initrd or when the file is shorter than its
setup sectors.
"""

import struct
from dataclasses import dataclass

HEAD_SIZE = 8192  # QEMU reads this much of the kernel to classify it
MULTIBOOT_MAGIC = 0x1BADB002
_MULTIBOOT_MAGIC_BYTES = struct.pack("<I", MULTIBOOT_MAGIC)

ELF_MAGIC = b"\x7fELF"
PT_LOAD, PT_NOTE = 1, 4
XEN_ELFNOTE_PHYS32_ENTRY = 18  # the PVH entry note QEMU looks for
ELFBOOT_UNSUPPORTED_FLAGS = 0x00010004  # e_flags bits load_elfboot refuses
ELF_MACHINES = (3, 62)  # EM_386, EM_X86_64: what qemu-system-x86_64's load_elf accepts
MAX_NOTE_BYTES = 1 << 20  # more PT_NOTE bytes than this are not kept (real kernels have a few KiB)

NO_PVH_NOTE = "Error loading uncompressed kernel without PVH ELF Note"
ELF_LOAD_ERROR = "Error while loading elf kernel"


@dataclass(frozen=True)
class ElfBoot:
    """What QEMU's PVH loader makes of an ELF kernel."""

    pvh_entry: int | None = None  # the PVH note's entry point; set when QEMU boots it
    refusal: str | None = None  # QEMU's error message when it refuses the file
    unchecked: str | None = None  # why neither could be decided from the bytes read


@dataclass(frozen=True)
class KernelKind:
    kind: str  # "bzImage", "multiboot", "elf", "other" or "empty"
    protocol: int | None = None  # Linux boot protocol version (bzImage only), e.g. 0x20f
    elf: ElfBoot | None = None  # ELF only

    @property
    def hashes_added(self) -> bool:
        """Whether QEMU adds the kernel-hashes table for this kernel when kernel-hashes=on."""
        return self.kind not in ("multiboot", "elf")

    @property
    def protocol_text(self) -> str | None:
        return None if self.protocol is None else f"{self.protocol >> 8}.{self.protocol & 0xFF:02d}"

    @property
    def description(self) -> str:
        """``kind`` in words, for messages: "a multiboot image", "an ELF image with a PVH entry note"."""
        if self.kind == "elf":
            if self.elf is not None and self.elf.pvh_entry is not None:
                return "an ELF image with a PVH entry note"
            return "an ELF image"
        return {"bzImage": "a Linux bzImage", "multiboot": "a multiboot image", "empty": "an empty file"}.get(
            self.kind, "a pre-2.00 zImage or unknown image")


def classify_kernel(head: bytes, size: int, elf_notes: "ElfNoteReader | None" = None) -> KernelKind:
    """``head``: the first ``HEAD_SIZE`` bytes; ``elf_notes``: a reader that saw the whole file, which
    an ELF kernel needs for its note segments (without one only those inside ``head`` are seen)."""
    if size == 0:
        return KernelKind("empty")
    if len(head) >= 0x208 and head[0x202:0x206] == b"HdrS":
        return KernelKind("bzImage", struct.unpack_from("<H", head, 0x206)[0])
    if _has_multiboot_header(head):
        return KernelKind("multiboot")
    if head[:4] == ELF_MAGIC:
        if elf_notes is None:
            elf_notes = ElfNoteReader()
            elf_notes.update(head)
        return KernelKind("elf", elf=elf_notes.boot(size))
    return KernelKind("other")


def kernel_warning(kind: KernelKind, label: str, kernel_hashes: bool) -> str | None:
    """The warning to show for a kernel QEMU does not treat as an ordinary bzImage, if any."""
    if kind.kind == "elf" and (kind.elf.refusal or kind.elf.unchecked):
        return _elf_warning(kind.elf, label)
    if kind.kind == "bzImage" or not kernel_hashes:
        return None
    if not kind.hashes_added:
        loader = "multiboot loader" if kind.kind == "multiboot" else "PVH loader"
        return (f"{label} is not a Linux bzImage but {kind.description}: QEMU boots it through its "
                f"{loader} and adds no kernel hashes, so the table is left out of this digest")
    if kind.kind == "empty":
        return (f"{label} is empty: QEMU refuses it ('invalid kernel header'); the table is built "
                f"from it anyway, as the reference tools do")
    return (f"{label} is not a Linux bzImage (no 'HdrS' at offset 0x202): QEMU loads it as a "
            f"pre-2.00 zImage and refuses it with an initrd or when it is shorter than its setup "
            f"sectors; the table is included as if QEMU had accepted it")


def _elf_warning(elf: ElfBoot, label: str) -> str:
    if elf.refusal:
        return (f"{label} is an ELF image that QEMU refuses to boot ('{elf.refusal}'), so no VM can "
                f"have been started with it; the digest is computed without the table, as for a "
                f"bootable (PVH) ELF kernel")
    return (f"{label} is an ELF image: QEMU boots it through its PVH loader (adding no kernel hashes) "
            f"only if it carries a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY), and refuses it otherwise "
            f"('{NO_PVH_NOTE}'); the note could not be checked ({elf.unchecked}); the table is left "
            f"out of this digest")


@dataclass(frozen=True)
class _ElfLayout:
    is64: bool
    order: str  # struct byte order, "<" or ">"
    flags: int
    machine: int
    segments: tuple  # (type, offset, filesz, align) of each program header
    phdr_end: int  # where the program headers end in the file (they are read only within the head)


class ElfNoteReader:
    """Keeps an ELF kernel's PT_NOTE segments as its bytes stream by (QEMU's PVH note is in one).

    The program headers are read from the first ``HEAD_SIZE`` bytes, where linkers put them; a note
    segment that starts inside those bytes is taken from them. For a non-ELF file it does nothing.
    """

    def __init__(self):
        self._head = bytearray()
        self._seen = 0
        self._layout: _ElfLayout | None = None
        self._decided = False
        self._notes: dict = {}  # file offset -> bytearray of that note segment
        self._notes_unkept: str | None = None

    def update(self, chunk) -> None:
        begin = self._seen
        self._seen += len(chunk)
        if not self._decided:
            self._head += chunk[: HEAD_SIZE - len(self._head)]
            if len(self._head) < HEAD_SIZE:
                return
            self._decide()
        if self._notes:
            self._copy(begin, chunk)

    def boot(self, size: int) -> ElfBoot:
        """What QEMU's ``load_elfboot`` does with this file of ``size`` bytes (all of it seen, or only
        the head when ``size`` is larger than what was fed)."""
        if not self._decided:
            self._decide()
        layout = self._layout
        if layout is None:
            if size <= len(self._head):
                return ElfBoot(refusal=ELF_LOAD_ERROR)  # shorter than an ELF header
            return ElfBoot(unchecked="its ELF header was not read")
        if layout.flags & ELFBOOT_UNSUPPORTED_FLAGS:
            return ElfBoot(refusal=f"elfboot unsupported flags = {layout.flags:x}")
        if layout.machine not in ELF_MACHINES or layout.phdr_end > size or any(
                t in (PT_LOAD, PT_NOTE) and offset + filesz > size for t, offset, filesz, _ in layout.segments):
            return ElfBoot(refusal=ELF_LOAD_ERROR)
        if layout.phdr_end > len(self._head):
            return ElfBoot(unchecked="its program headers lie beyond the first 8 KiB")
        if self._notes_unkept:
            return ElfBoot(unchecked=self._notes_unkept)
        if self._seen < size:
            return ElfBoot(unchecked="only the first bytes of the file were read")
        entry = 0
        for _, offset, _, align in (s for s in layout.segments if s[0] == PT_NOTE):
            found = _pvh_entry(bytes(self._notes[offset]), align, layout)
            entry = found if found is not None else entry  # QEMU keeps the last note it finds
        return ElfBoot(pvh_entry=entry) if entry else ElfBoot(refusal=NO_PVH_NOTE)

    def _decide(self) -> None:
        self._decided = True
        if self._head[:4] != ELF_MAGIC:
            return
        self._layout = _elf_layout(bytes(self._head))
        if self._layout is None or self._layout.phdr_end > len(self._head):
            return
        notes = [(offset, filesz) for t, offset, filesz, _ in self._layout.segments if t == PT_NOTE]
        if sum(filesz for _, filesz in notes) > MAX_NOTE_BYTES:
            self._notes_unkept = f"its note segments hold more than {MAX_NOTE_BYTES} bytes"
            return
        self._notes = {offset: bytearray(filesz) for offset, filesz in notes}
        self._copy(0, self._head)

    def _copy(self, begin: int, chunk) -> None:
        end = begin + len(chunk)
        for offset, buf in self._notes.items():
            lo, hi = max(begin, offset), min(end, offset + len(buf))
            if lo < hi:
                buf[lo - offset: hi - offset] = chunk[lo - begin: hi - begin]


def _elf_layout(head: bytes) -> _ElfLayout | None:
    """The ELF header fields QEMU uses; None when ``head`` is too short to hold the header."""
    is64 = head[4:5] == b"\x02"
    order = ">" if head[5:6] == b"\x02" else "<"
    if len(head) < (64 if is64 else 52):
        return None
    machine, = struct.unpack_from(order + "H", head, 18)  # e_machine sits at 18 in both classes
    if is64:
        phoff, = struct.unpack_from(order + "Q", head, 32)
        flags, = struct.unpack_from(order + "I", head, 48)
        phnum, = struct.unpack_from(order + "H", head, 56)
        entry_size, fmt, fields = 56, "IIQQQQQQ", (0, 2, 5, 7)
    else:
        phoff, flags = struct.unpack_from(order + "I", head, 28)[0], struct.unpack_from(order + "I", head, 36)[0]
        phnum, = struct.unpack_from(order + "H", head, 44)
        entry_size, fmt, fields = 32, "IIIIIIII", (0, 1, 4, 7)
    phdr_end = phoff + phnum * entry_size  # QEMU reads sizeof(phdr) per entry, whatever e_phentsize says
    segments = []
    if phdr_end <= len(head):
        for i in range(phnum):
            values = struct.unpack_from(order + fmt, head, phoff + i * entry_size)
            segments.append(tuple(values[f] for f in fields))  # type, offset, filesz, align
    return _ElfLayout(is64, order, flags, machine, tuple(segments), phdr_end)


def _pvh_entry(notes: bytes, align: int, layout: _ElfLayout) -> int | None:
    """The PVH entry point from a PT_NOTE segment, walked as QEMU's ``get_elf_note_type`` does."""
    align = max(align, 1)
    pos = 0
    while pos + 12 <= len(notes):
        namesz, descsz, note_type = struct.unpack_from(layout.order + "III", notes, pos)
        desc = pos + 12 + _align_up(namesz, align)
        if note_type == XEN_ELFNOTE_PHYS32_ENTRY:
            width = 8 if layout.is64 else 4  # QEMU reads a size_t (64-bit ELF) or a u32
            value = notes[desc: desc + width].ljust(width, b"\0")
            return int.from_bytes(value, "little" if layout.order == "<" else "big")
        pos = desc + _align_up(descsz, align)
    return None


def _align_up(n: int, align: int) -> int:
    return (n + align - 1) // align * align


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
