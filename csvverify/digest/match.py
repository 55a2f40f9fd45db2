"""Compare a report's ``measure`` with the expected digest and, on a mismatch, find the launch variant
that reproduces it.

The usual reasons a measure does not match (from users' reports against the SEV tools): the VM was
started without ``kernel-hashes=on``; the cmdline gained or lost a trailing newline (``$(cat file)``
strips it, reading the file does not); there was no initrd, or no ``-append``; the value is an AMD SEV
(SHA-256) digest; the VM used split pflash CODE/VARS while the combined OVMF.fd was given here. Every
combination of these is tried. It is cheap: files are read once (a combined image's CODE part is
hashed in the same pass, so a pipe works too), the firmware's hash contexts are copied, and only the
176-byte table changes between variants.

This compares values only. It does not check the report's signature (``csvverify verify`` does).
"""

import hashlib
from dataclasses import dataclass
from itertools import product

from csvverify.errors import InputError, UsageError

from . import compute
from .compute import EMPTY_SHA256, DigestOptions, Measured
from .sources import ProgressCallback, Source
from .table import build_hash_table

POLICY_ES = 0x4
POLICY_CSV3 = 0x40


@dataclass(frozen=True)
class Change:
    what: str  # the difference from the inputs as given
    how: str  # what to change on the command line to compute it


@dataclass(frozen=True)
class Variant:
    changes: tuple  # of Change; empty for the inputs as given
    algorithm: str
    digest: bytes

    def describe(self) -> str:
        return "; ".join(c.what for c in self.changes) or "the inputs as given"


@dataclass(frozen=True)
class MatchResult:
    measure: bytes
    result: compute.DigestResult  # the digest of the inputs as given
    matched: bool
    reproduced_by: tuple  # Variants equal to ``measure``, fewest changes first (empty when matched)
    tried: int  # how many distinct launch variants were computed
    notes: tuple  # hints about the report itself (policy bits, V1 anonce tampering)
    changes_tried: tuple = ()  # Change.what of every difference tried (alone and combined); () when matched


def match_launch_digest(measure: bytes, firmware: Source, kernel: Source | None = None,
                        initrd: Source | None = None, cmdline: str | bytes | None = None,
                        options: DigestOptions = DigestOptions(), *, report_version: int | None = None,
                        report_policy: int | None = None,
                        progress: ProgressCallback | None = None) -> MatchResult:
    """Does ``measure`` (32 bytes, already un-masked for V1 reports) equal the launch digest?

    ``report_version`` and ``report_policy``, when known, add hints: CSV2/CSV3 policy bits, and the
    XOR pattern an altered (unsigned) V1 anonce leaves.
    """
    if not isinstance(measure, (bytes, bytearray, memoryview)):
        raise TypeError(f"measure must be the 32 bytes of the report's measure, not {type(measure).__name__}")
    measure = bytes(measure)
    if len(measure) != 32:
        raise UsageError(f"a measure is 32 bytes, got {len(measure)}")
    measured = compute.measure_inputs(firmware, kernel, initrd, cmdline, options, progress, fork_code_part=True)
    result = measured.result
    notes = list(_policy_notes(report_policy, options))
    if result.digest == measure:
        return MatchResult(measure, result, True, (), 1, tuple(notes))
    computed = list(_variants(measured, options))
    changes_tried = tuple(dict.fromkeys(c.what for v in computed for c in v.changes))
    variants = _dedupe(computed)
    hits = tuple(sorted((v for v in variants if v.digest == measure), key=lambda v: len(v.changes)))
    if not hits and report_version == 1:
        notes.extend(_anonce_notes(measure, variants))
    return MatchResult(measure, result, False, hits, len(variants), tuple(notes), changes_tried)


def _variants(m: Measured, options: DigestOptions):
    r = m.result
    firmwares = [((), m.after_firmware)]
    if r.firmware.variable_store_size and m.code_part is not None:
        firmwares.append(((_code_only_change(r.firmware),), m.code_part))
    other = "sha256" if options.algorithm == "sm3" else "sm3"
    algorithms = [((), options.algorithm),
                  ((Change(f"{other.upper()} outer hash instead of {options.algorithm.upper()}",
                           f"--algorithm {other}"),), other)]
    for (fw_changes, hashes), (alg_changes, alg), (table_changes, table) in product(
            firmwares, algorithms, _tables(r, options)):
        outer = hashes[alg].copy()
        for piece in (table or b"", *m.vmsa_pages):
            outer.update(piece)
        yield Variant(fw_changes + alg_changes + table_changes, alg, outer.digest())


def _tables(r: compute.DigestResult, options: DigestOptions):
    """(changes, table or None) for every kernel-hashes variant."""
    if r.kernel is None or not r.kernel.kind.hashes_added:
        return [((), r.table)]
    hashes_off = Change("kernel hashes off (VM started without kernel-hashes=on)", "--no-kernel-hashes")
    if options.kernel_hashes:
        return [*_kernel_tables(r, ()), ((hashes_off,), None)]
    try:
        compute.require_hash_area(r.firmware)
    except InputError:
        return [((), None)]
    hashes_on = Change("kernel hashes on", "drop --no-kernel-hashes")
    return [((), None), *_kernel_tables(r, (hashes_on,))]


def _kernel_tables(r: compute.DigestResult, base: tuple):
    cmdline = r.cmdline or b""
    cmdlines = [((), cmdline)]
    if cmdline.endswith(b"\n"):
        cmdlines.append(((Change("cmdline without its trailing newline", "remove the trailing newline "
                                 "from the cmdline"),), cmdline.rstrip(b"\r\n")))
    else:
        cmdlines.append(((Change("cmdline with a trailing newline", "add a newline at the end of the "
                                 "cmdline (--cmdline-file with the file as it is)"),), cmdline + b"\n"))
    if cmdline:
        cmdlines.append(((Change("no cmdline (VM started without -append)", "drop --cmdline"),), b""))
    initrds = [((), r.initrd.sha256 if r.initrd else EMPTY_SHA256)]
    if r.initrd:
        initrds.append(((Change("no initrd", "drop --initrd"),), EMPTY_SHA256))
    for (c_changes, text), (i_changes, initrd_sha) in product(cmdlines, initrds):
        table = build_hash_table(hashlib.sha256(text + b"\0").digest(), initrd_sha, r.kernel.sha256)
        yield base + c_changes + i_changes, table


def _code_only_change(fw: compute.FirmwareSummary) -> Change:
    code_size = fw.size - fw.variable_store_size
    return Change("firmware without its variable store (the CODE part, as with split pflash)",
                  f"tail -c {code_size} {fw.name} > OVMF_CODE.fd and pass --ovmf OVMF_CODE.fd")


def _dedupe(variants) -> list:
    best = {}
    for v in variants:
        if v.digest not in best or len(v.changes) < len(best[v.digest].changes):
            best[v.digest] = v
    return list(best.values())


def _policy_notes(policy: int | None, options: DigestOptions):
    if policy is None:
        return
    if policy & POLICY_CSV3:
        yield (f"the report's policy 0x{policy:08x} has the CSV3 bit: {compute.CSV3_REFUSAL}, so no "
               f"variant can reproduce it ({compute.CSV3_REASON})")
    elif policy & POLICY_ES and not options.vmsa:
        yield (f"the report's policy 0x{policy:08x} has the ES bit (CSV2): its measure also covers one "
               f"VMSA page per vCPU, which were not given (--vmsa FILE)")
    elif not policy & POLICY_ES and options.vmsa:
        yield (f"the report's policy 0x{policy:08x} has no ES bit (CSV1), so no VMSA pages were measured; "
               f"drop --vmsa")


def _anonce_notes(measure: bytes, variants: list):
    for v in sorted(variants, key=lambda v: len(v.changes)):
        delta = bytes(a ^ b for a, b in zip(measure, v.digest))
        if delta[:4] * 8 == delta:
            yield (f"the measure differs from the digest of {v.describe()} by the repeating XOR pattern "
                   f"{delta[:4].hex()}: that is what an altered anonce does to a V1 report (anonce is "
                   f"not signed), so this report's decoded fields cannot be trusted")
            return
