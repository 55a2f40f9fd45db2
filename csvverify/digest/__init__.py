"""Expected Hygon CSV launch digest (the report's ``measure``), a port of Hygon's ``calc_vm_digest``.

    measure = SM3(firmware ‖ [176-byte kernel-hashes table] ‖ [CSV2: one VMSA page per vCPU])

Library API (``docs/digest.md`` has the details and worked examples)::

    from csvverify.digest import launch_digest, match_launch_digest, DigestOptions

    r = launch_digest("OVMF.fd", kernel="vmlinuz", initrd="initrd.img", cmdline="console=ttyS0")
    r.hex, r.base64          # the digest
    r.table                  # the 176 table bytes (None when not measured)
    r.firmware.sha256, r.kernel.sha256, r.initrd.sha256, r.cmdline_sha256   # component hashes
    r.warnings, r.notes      # why it may not match the VM

    launch_digest("OVMF.fd", options=DigestOptions(algorithm="sha256"))   # AMD SEV digest
    m = match_launch_digest(report.measure, "OVMF.fd", kernel=..., cmdline=...)
    m.matched, m.reproduced_by   # on a mismatch: which launch variant gives the report's value

Inputs are paths or bytes; files are streamed in 1 MiB chunks (a pipe or device is read up to a cap,
see ``sources``). ``progress=callback(done, total)`` reports hashing progress; ``total`` is None when an
input is a pipe or device. Errors are ``csvverify.errors.InputError`` / ``UsageError``; arguments of
the wrong type raise ``TypeError``.
"""

from .compute import (ALGORITHMS, CSV3_REASON, CSV3_REFUSAL, GENERATIONS, DigestOptions, DigestResult,
                      FileSummary, FirmwareSummary, KernelSummary, launch_digest, read_cmdline_file)
from .match import Change, MatchResult, Variant, match_launch_digest
from .render import (SCHEMA, as_dict, default_label, explain_lines, format_digest, match_lines, policy_snippet,
                     policy_warnings, require_allowlistable)
from .table import PADDED_TABLE_SIZE, build_hash_table

__all__ = [
    "ALGORITHMS", "CSV3_REASON", "CSV3_REFUSAL", "GENERATIONS", "PADDED_TABLE_SIZE", "SCHEMA",
    "Change", "DigestOptions", "DigestResult", "FileSummary", "FirmwareSummary", "KernelSummary",
    "MatchResult", "Variant", "as_dict", "build_hash_table", "default_label", "explain_lines", "format_digest",
    "launch_digest", "match_launch_digest", "match_lines", "policy_snippet", "policy_warnings", "require_allowlistable", "read_cmdline_file",
]
