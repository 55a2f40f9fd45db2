"""The launch digest: ``H(firmware ‖ [176-byte kernel-hashes table] ‖ [VMSA pages])``, H = SM3 for CSV.

Inputs are read once, in launch order, and checked the way QEMU checks them, so a set of inputs QEMU
would refuse fails here with QEMU's reason. The firmware is hashed with both outer algorithms in the
same pass (and, for ``match``, a combined image's CODE part too); ``csvverify.digest.match`` reuses
those contexts to try variants without re-reading any input, so every input may be a pipe.
"""

import base64
import hashlib
from dataclasses import dataclass, field

from csvverify.errors import InputError, UsageError
from csvverify.hashing import new_sm3

from . import ovmf
from .kernel import HEAD_SIZE, ElfNoteReader, KernelKind, classify_kernel, kernel_warning
from .sources import (FIRMWARE_UNSIZED_LIMIT, SOURCE_TYPES, Blob, Progress, ProgressCallback, Source, open_blob,
                      read_all, stream)
from .table import PADDED_TABLE_SIZE, build_hash_table

ALGORITHMS = ("sm3", "sha256")
GENERATIONS = ("csv1", "csv2", "csv3")
VMSA_PAGE_SIZE = 4096
MAX_CMDLINE_FILE = 1 << 16  # far above any kernel's command-line limit
EMPTY_SHA256 = hashlib.sha256(b"").digest()

CSV3_REFUSAL = "CSV3 launch digests cannot be computed from public information"
CSV3_REASON = ("a CSV3 guest is loaded with Hygon's LAUNCH_ENCRYPT_DATA and LAUNCH_ENCRYPT_VMCB commands, "
               "which also measure per-command metadata (guest addresses, lengths) in an unpublished "
               "format; allowlist the measure observed from a known-good launch instead "
               "(see docs/digest.md)")


@dataclass(frozen=True)
class DigestOptions:
    """How the VM was launched.

    algorithm      outer hash: "sm3" (Hygon CSV) or "sha256" (AMD SEV, to cross-check SEV tools)
    kernel_hashes  QEMU's ``kernel-hashes=on``: measure the table when a kernel is given
    vmsa           CSV2: one raw 4096-byte VMSA page per vCPU, in vCPU order (paths or bytes)
    generation     "csv1", "csv2" or "csv3"; None means csv2 when VMSA pages are given, else csv1
    """

    algorithm: str = "sm3"
    kernel_hashes: bool = True
    vmsa: tuple = ()
    generation: str | None = None

    def __post_init__(self):
        if isinstance(self.vmsa, SOURCE_TYPES):  # one page given where a sequence of them is expected
            raise TypeError(f"DigestOptions.vmsa is a sequence of VMSA pages (one path or bytes per vCPU), "
                            f"not a single {type(self.vmsa).__name__}: write vmsa=(page,)")
        try:
            pages = tuple(self.vmsa)
        except TypeError:
            raise TypeError(f"DigestOptions.vmsa is a sequence of VMSA pages, not "
                            f"{type(self.vmsa).__name__}") from None
        object.__setattr__(self, "vmsa", pages)
        if not isinstance(self.kernel_hashes, bool):
            raise TypeError(f"DigestOptions.kernel_hashes is True or False, not "
                            f"{type(self.kernel_hashes).__name__}")


@dataclass(frozen=True)
class FileSummary:
    name: str
    size: int
    sha256: bytes


@dataclass(frozen=True)
class FirmwareSummary(FileSummary):
    sm3: bytes = b""
    footer: ovmf.FooterTable = field(default_factory=ovmf.FooterTable)
    hash_area: ovmf.HashTableArea | None = None
    reset_vector: int | None = None
    variable_store_size: int | None = None  # set for a combined OVMF.fd (variable store + code)


@dataclass(frozen=True)
class KernelSummary(FileSummary):
    kind: KernelKind = KernelKind("other")


@dataclass(frozen=True)
class DigestResult:
    """The expected ``measure`` and everything that went into it (for ``--explain`` and debugging)."""

    digest: bytes
    algorithm: str
    generation: str
    firmware: FirmwareSummary
    kernel: KernelSummary | None = None
    initrd: FileSummary | None = None
    cmdline: bytes | None = None
    cmdline_sha256: bytes | None = None  # SHA-256(cmdline ‖ 00), set whenever a kernel is given
    table: bytes | None = None  # the 176 table bytes, only when they were measured
    vmsa: tuple = ()  # FileSummary per VMSA page
    warnings: tuple = ()  # things that probably make the digest differ from the VM's
    notes: tuple = ()  # facts worth knowing when a digest does not match

    @property
    def hex(self) -> str:
        return self.digest.hex()

    @property
    def base64(self) -> str:
        return base64.b64encode(self.digest).decode()

    @property
    def measured_size(self) -> int:
        return self.firmware.size + len(self.table or b"") + VMSA_PAGE_SIZE * len(self.vmsa)

    @property
    def kernel_unmeasured(self) -> bool:
        """A kernel was given but the digest does not depend on it (kernel hashes off, or a kernel
        QEMU boots without adding them): any kernel, initrd and cmdline give the same value."""
        return self.kernel is not None and self.table is None


class OuterHash:
    """A copyable running hash with a non-destructive ``digest()`` for either outer algorithm."""

    def __init__(self, algorithm: str, ctx=None):
        self.algorithm = algorithm
        self._ctx = ctx if ctx is not None else (new_sm3() if algorithm == "sm3" else hashlib.sha256())

    def update(self, data) -> None:
        self._ctx.update(data)

    def copy(self) -> "OuterHash":
        return OuterHash(self.algorithm, self._ctx.copy())

    def digest(self) -> bytes:
        ctx = self._ctx.copy()
        return ctx.finalize() if self.algorithm == "sm3" else ctx.digest()


@dataclass
class Measured:
    """Everything read from the inputs; ``result`` is the digest of the inputs as given."""

    result: DigestResult
    after_firmware: dict  # algorithm -> OuterHash over the firmware
    vmsa_pages: tuple
    code_part: dict | None = None  # algorithm -> OuterHash over a combined image's CODE part, when asked


def launch_digest(firmware: Source, kernel: Source | None = None, initrd: Source | None = None,
                  cmdline: str | bytes | None = None, options: DigestOptions = DigestOptions(), *,
                  progress: ProgressCallback | None = None) -> DigestResult:
    """The expected launch digest (the report's ``measure``) of a QEMU + OVMF launch.

    ``firmware``, ``kernel``, ``initrd`` and the ``options.vmsa`` pages are paths or the bytes
    themselves; ``cmdline`` is the ``-append`` string (``str`` is encoded as UTF-8, ``bytes`` are taken
    verbatim, without the NUL QEMU adds). ``progress(done, total)`` is called as bytes are hashed.
    Raises ``InputError`` for unreadable or unusable inputs and ``UsageError`` for combinations QEMU
    refuses or that cannot be computed (CSV3).
    """
    return measure_inputs(firmware, kernel, initrd, cmdline, options, progress).result


def measure_inputs(firmware, kernel, initrd, cmdline, options: DigestOptions,
                   progress: ProgressCallback | None, *, fork_code_part: bool = False) -> Measured:
    """Read every input once. ``fork_code_part``: also hash a combined image's CODE part in the same
    pass, so the split-pflash variant needs no second read (the firmware may be a pipe)."""
    if not isinstance(options, DigestOptions):
        raise TypeError(f"options must be a DigestOptions, not {type(options).__name__}")
    generation = _check_options(options, kernel, initrd, cmdline)
    cmdline = _cmdline_bytes(cmdline)
    blobs = {"firmware": open_blob(firmware, "firmware", FIRMWARE_UNSIZED_LIMIT)}
    for role, source in (("kernel", kernel), ("initrd", initrd)):
        if source is not None:
            blobs[role] = open_blob(source, role)
    vmsa_blobs = [open_blob(page, f"VMSA page {i}") for i, page in enumerate(options.vmsa)]
    for blob in vmsa_blobs:
        _check_vmsa_size(blob, blob.size)
    sizes = [b.size for b in [*blobs.values(), *vmsa_blobs]]
    tracker = Progress(progress, None if None in sizes else sum(sizes))
    warnings, notes = [], []

    code_part = CodePartFork() if fork_code_part else None
    fw, after_firmware = _measure_firmware(blobs["firmware"], tracker, warnings, notes, code_part)
    kernel_summary = initrd_summary = cmdline_sha256 = table = None
    if "kernel" in blobs:
        kernel_summary = _measure_kernel(blobs["kernel"], tracker)
        if warning := kernel_warning(kernel_summary.kind, blobs["kernel"].label, options.kernel_hashes):
            warnings.append(warning)
        if options.kernel_hashes and kernel_summary.kind.hashes_added:
            require_hash_area(fw)
        if "initrd" in blobs:
            sha = hashlib.sha256()
            size = stream(blobs["initrd"], [sha], tracker).size
            initrd_summary = FileSummary(blobs["initrd"].name, size, sha.digest())
        cmdline_sha256 = hashlib.sha256((cmdline or b"") + b"\0").digest()
        if options.kernel_hashes and kernel_summary.kind.hashes_added:
            table = build_hash_table(cmdline_sha256, initrd_summary.sha256 if initrd_summary else EMPTY_SHA256,
                                     kernel_summary.sha256)
    if cmdline and cmdline.endswith(b"\n"):
        warnings.append("the cmdline ends with a newline, which is measured as part of it; a VM started "
                        "with -append \"$(cat FILE)\" does not have it (the shell strips it)")

    pages = tuple(_read_vmsa(blob, tracker) for blob in vmsa_blobs)
    outer = after_firmware[options.algorithm].copy()
    for piece in (table or b"", *pages):
        outer.update(piece)
    result = DigestResult(
        digest=outer.digest(), algorithm=options.algorithm, generation=generation, firmware=fw,
        kernel=kernel_summary, initrd=initrd_summary, cmdline=cmdline, cmdline_sha256=cmdline_sha256,
        table=table, vmsa=tuple(FileSummary(b.name, VMSA_PAGE_SIZE, hashlib.sha256(p).digest())
                                for b, p in zip(vmsa_blobs, pages)),
        warnings=tuple(warnings), notes=tuple(notes))
    # The fork found the CODE part from the same leading bytes, with the same rule, as fw.variable_store_size.
    combined = code_part is not None and fw.variable_store_size is not None
    return Measured(result, after_firmware, pages, code_part.hashes if combined else None)


def read_cmdline_file(path: Source) -> bytes:
    """A cmdline stored in a file, byte for byte (a trailing newline is kept, and warned about)."""
    return read_all(open_blob(path, "cmdline file"), MAX_CMDLINE_FILE)


def require_hash_area(fw: FirmwareSummary) -> ovmf.HashTableArea:
    """The firmware's kernel-hashes area, or QEMU's refusal to start with ``-kernel`` and kernel-hashes=on."""
    hint = ("use an OVMF built from OvmfPkg/AmdSev (it reserves the area), or pass --no-kernel-hashes "
            "if the VM was started without kernel-hashes=on")
    area = fw.hash_area
    short = ovmf.short_hash_area(fw.footer)
    if short is not None:
        raise InputError(f"firmware {fw.name}: its OVMF footer entry {ovmf.HASH_TABLE_AREA_GUID} (the "
                         f"kernel-hashes area) holds {short} bytes, too few for the u32 base and u32 "
                         f"size QEMU reads from it; QEMU would read past the entry, so the firmware is "
                         f"corrupt or not an OVMF build", hint)
    if area is None:
        why = fw.footer.problem or f"its OVMF footer table has no entry {ovmf.HASH_TABLE_AREA_GUID}"
        raise InputError(f"firmware {fw.name} has no kernel-hashes table area ({why}); QEMU refuses "
                         f"-kernel with kernel-hashes=on: 'kernel specified but guest firmware has no "
                         f"hashes table GUID'", hint)
    if area.base == 0 or area.size < PADDED_TABLE_SIZE:
        raise InputError(f"firmware {fw.name}: guest firmware hashes table area is invalid "
                         f"(base=0x{area.base:x} size=0x{area.size:x}); QEMU refuses -kernel with "
                         f"kernel-hashes=on for it", hint)
    return area


def outer_hashes() -> dict:
    return {alg: OuterHash(alg) for alg in ALGORITHMS}


def _check_options(options: DigestOptions, kernel, initrd, cmdline) -> str:
    if options.algorithm not in ALGORITHMS:
        raise UsageError(f"unknown algorithm {options.algorithm!r}: use one of {', '.join(ALGORITHMS)}")
    generation = options.generation or ("csv2" if options.vmsa else "csv1")
    if generation not in GENERATIONS:
        raise UsageError(f"unknown CSV generation {generation!r}: use one of {', '.join(GENERATIONS)}")
    if generation == "csv3":
        raise UsageError(CSV3_REFUSAL, CSV3_REASON)
    if generation == "csv2" and not options.vmsa:
        raise UsageError("a CSV2 launch digest needs the VMSA pages: pass one 4096-byte page per vCPU, "
                         "in vCPU order, with --vmsa FILE",
                         "their content depends on the host kernel, the vCPU model and the firmware, and "
                         "Hygon publishes no description of it, so csvverify does not build them")
    if generation == "csv1" and options.vmsa:
        raise UsageError("VMSA pages are measured only for CSV2 guests (policy ES bit): drop --vmsa "
                         "or use --generation csv2")
    if kernel is None:
        for name, value in (("an initrd", initrd), ("a cmdline", cmdline)):
            if value is not None:
                raise UsageError(f"{name} was given without a kernel: QEMU accepts -initrd and -append "
                                 f"only with -kernel; add --kernel FILE")
    return generation


def _cmdline_bytes(cmdline: str | bytes | None) -> bytes | None:
    if cmdline is None:
        return None
    if not isinstance(cmdline, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"cmdline must be str or bytes, not {type(cmdline).__name__}")
    data = cmdline.encode("utf-8", "surrogateescape") if isinstance(cmdline, str) else bytes(cmdline)
    if (nul := data.find(b"\0")) >= 0:
        raise InputError(f"the cmdline contains a NUL byte at offset {nul}: a QEMU command line cannot "
                         f"carry one, and QEMU would measure only the part before it")
    return data


class CodePartFork:
    """A sink fed the whole firmware that hashes only what follows a leading variable store (the CODE
    part of a combined OVMF.fd), with both outer algorithms; it stays idle for any other image."""

    def __init__(self):
        self.hashes = outer_hashes()
        self.start: int | None = None  # offset of the CODE part, once the header says there is one
        self._head = bytearray()
        self._seen = 0

    def update(self, chunk) -> None:
        begin = self._seen
        self._seen += len(chunk)
        if len(self._head) < ovmf.FV_HEADER_PROBE:
            self._head += chunk[: ovmf.FV_HEADER_PROBE - len(self._head)]
            if len(self._head) < ovmf.FV_HEADER_PROBE:
                return
            self.start = ovmf.variable_store_size(bytes(self._head))
            if self.start is not None and self.start < begin:  # the CODE part began in the probed bytes
                self._feed(self._head[self.start: begin])
        if self.start is not None and self._seen > self.start:
            self._feed(chunk[max(self.start - begin, 0):])

    def _feed(self, data) -> None:
        for h in self.hashes.values():
            h.update(data)


def _measure_firmware(blob: Blob, tracker: Progress, warnings: list, notes: list,
                      code_part: CodePartFork | None = None):
    after = outer_hashes()
    sinks = list(after.values()) + ([code_part] if code_part else [])
    # The SHA-256 outer hash over the firmware is the firmware's SHA-256: no third context is needed.
    info = stream(blob, sinks, tracker, keep_head=ovmf.FV_HEADER_PROBE, keep_tail=ovmf.MAX_TABLE_TAIL)
    if info.size == 0:
        raise InputError(f"firmware {blob.name} is empty")
    vars_size = ovmf.variable_store_size(info.head)
    if vars_size is not None and vars_size >= info.size:
        raise InputError(f"firmware {blob.name} is a UEFI variable store (OVMF_VARS), which QEMU never "
                         f"measures", "pass the code image (OVMF_CODE.fd, pflash unit 0) or the combined "
                                      "OVMF.fd given to -bios")
    if info.size % 4096:
        warnings.append(f"firmware {blob.name} is {info.size} bytes, not a multiple of 4 KiB: QEMU "
                        f"refuses such a file as -bios or pflash; is it the right file?")
    elif info.size % 65536:
        notes.append(f"firmware {blob.name} is not a multiple of 64 KiB: QEMU accepts it as pflash, "
                     f"not as -bios")
    if vars_size is not None:
        notes.append(f"firmware {blob.name} is a combined OVMF image (a {vars_size}-byte variable store "
                     f"followed by the code), which is what -bios measures; a VM started with split "
                     f"pflash CODE/VARS files measures only the CODE file")
    footer = ovmf.parse_footer_table(info.tail, info.size)
    if footer.problem and footer.present:
        notes.append(f"firmware {blob.name}: {footer.problem}")
    summary = FirmwareSummary(blob.name, info.size, after["sha256"].digest(), sm3=after["sm3"].digest(),
                              footer=footer, hash_area=ovmf.hash_table_area(footer),
                              reset_vector=ovmf.sev_es_reset_vector(footer), variable_store_size=vars_size)
    return summary, after


def _measure_kernel(blob: Blob, tracker: Progress) -> KernelSummary:
    sha = hashlib.sha256()
    elf_notes = ElfNoteReader()
    info = stream(blob, [sha, elf_notes], tracker, keep_head=HEAD_SIZE)
    return KernelSummary(blob.name, info.size, sha.digest(), kind=classify_kernel(info.head, info.size, elf_notes))


def _check_vmsa_size(blob: Blob, size: int | None) -> None:
    if size is not None and size != VMSA_PAGE_SIZE:
        raise InputError(f"{blob.label} is {size} bytes; a VMSA page is exactly {VMSA_PAGE_SIZE} bytes "
                         f"(one raw page per vCPU)")


def _read_vmsa(blob: Blob, tracker: Progress) -> bytes:
    page = read_all(blob, VMSA_PAGE_SIZE)
    _check_vmsa_size(blob, len(page))
    tracker.advance(len(page))
    return page
