"""Text, JSON and TOML renderings of a launch digest (no click here; ``csvverify.cli`` prints them)."""

import base64

from csvverify.errors import UsageError
from csvverify.text import printable

from . import ovmf
from .compute import DigestResult
from .match import MatchResult
from .table import PADDED_TABLE_SIZE, table_fields

SCHEMA = "csvverify/digest/v1"
FORMATS = ("hex", "base64", "json")
UNPINNED = "this value does not depend on the kernel, initrd or cmdline"


def format_digest(digest: bytes, fmt: str) -> str:
    return base64.b64encode(digest).decode() if fmt == "base64" else digest.hex()


def explain_lines(r: DigestResult, fmt: str = "hex") -> list[str]:
    """Every component hash, the 176 table bytes field by field, and the digest."""
    fw = r.firmware
    lines = [_row("outer hash", f"{r.algorithm} ({r.generation}); the table entries are SHA-256"),
             _row("firmware", f"{_printable(fw.name)}, {fw.size} bytes"),
             _row("  sha256", fw.sha256.hex()),
             _row("  sm3", fw.sm3.hex()),
             _row("  ovmf table", _footer_text(r))]
    if fw.variable_store_size:
        lines.append(_row("  layout", f"combined image: {fw.variable_store_size}-byte variable store, "
                                      f"then {fw.size - fw.variable_store_size} bytes of code"))
    if r.kernel is not None:
        lines += _kernel_lines(r)
    lines += _table_lines(r.table)
    for i, page in enumerate(r.vmsa):
        lines.append(_row(f"vmsa {i}", f"{_printable(page.name)}, sha256 {page.sha256.hex()}"))
    parts = [f"firmware {fw.size}"] + ([f"table {len(r.table)}"] if r.table else []) + \
        ([f"VMSA {len(r.vmsa)} x 4096"] if r.vmsa else [])
    lines.append(_row("measured", f"{r.measured_size} bytes: " + " + ".join(parts)))
    lines += [f"note: {_printable(n)}" for n in r.notes]
    lines.append(_row(f"digest ({r.algorithm})", format_digest(r.digest, fmt)))
    return lines


def match_lines(m: MatchResult, subject: str, fmt: str = "hex") -> list[str]:
    """``subject`` names the compared value, e.g. "the measure in report.cert"."""
    alg = m.result.algorithm
    subject = _printable(subject)
    if m.matched:
        lines = [f"MATCH: {subject} equals the expected {alg} digest",
                 _row("  measure", format_digest(m.measure, fmt))]
    else:
        lines = [f"MISMATCH: {subject} is not the expected {alg} digest of these inputs",
                 _row("  measure", format_digest(m.measure, fmt)),
                 _row("  expected", format_digest(m.result.digest, fmt))]
        if m.reproduced_by:
            for v in m.reproduced_by:
                lines.append(f"  reproduced by: {v.describe()}")
                lines += [f"    to compute it: {_printable(c.how)}" for c in v.changes]
        else:
            tried = (f"tried the inputs as given and each combination of: {'; '.join(m.changes_tried)}"
                     if m.changes_tried else "tried only the inputs as given")
            lines.append(f"  none of {m.tried} launch variants reproduces it: {tried}; compare each component "
                         f"hash with the VM's actual inputs")
    lines += [f"note: {_printable(n)}" for n in m.notes]
    lines.append("(values only: the report's signature is not checked here; "
                 "use csvverify verify --chain --expect-measure HEX)")
    return lines


def as_dict(r: DigestResult, match: MatchResult | None = None) -> dict:
    fw = r.firmware
    doc = {
        "schema": SCHEMA,
        "algorithm": r.algorithm,
        "generation": r.generation,
        "digest": {"hex": r.hex, "base64": r.base64},
        "firmware": {
            **_file(fw), "sm3": fw.sm3.hex(), "variable_store_size": fw.variable_store_size,
            "ovmf_table": {
                "entries": {str(g): p.hex() for g, p in fw.footer.entries.items()},
                "problem": fw.footer.problem,
                "hash_table_area": fw.hash_area and {"base": fw.hash_area.base, "size": fw.hash_area.size},
                "sev_es_reset_vector": fw.reset_vector,
            },
        },
        "kernel_hashes": r.table is not None,
        "kernel": r.kernel and {**_file(r.kernel), "type": r.kernel.kind.kind,
                                "boot_protocol": r.kernel.kind.protocol_text,
                                "elf_boot": _elf_boot(r.kernel.kind.elf)},
        "initrd": r.initrd and _file(r.initrd),
        "cmdline": None if r.kernel is None else {
            "text": _text(r.cmdline or b""), "hex": (r.cmdline or b"").hex(), "given": r.cmdline is not None,
            "sha256_with_nul": r.cmdline_sha256.hex()},
        "hash_table": r.table and {
            "hex": r.table.hex(),
            "fields": [{"offset": f.offset, "hex": f.data.hex(), "meaning": f.meaning}
                       for f in table_fields(r.table)]},
        "vmsa": [_file(p) for p in r.vmsa],
        "measured_size": r.measured_size,
        "warnings": list(r.warnings),
        "notes": list(r.notes),
    }
    if match is not None:
        doc["match"] = {
            "measure": match.measure.hex(),
            "matched": match.matched,
            "reproduced_by": [{"changes": [{"what": c.what, "how": c.how} for c in v.changes],
                               "algorithm": v.algorithm, "digest": v.digest.hex()}
                              for v in match.reproduced_by],
            "variants_tried": match.tried,
            "changes_tried": list(match.changes_tried),
            "notes": list(match.notes),
            "signature_checked": False,
        }
    return doc


def policy_warnings(r: DigestResult) -> list[str]:
    """What a reader of the ``policy_snippet`` entry must know: the value may not pin what it seems to."""
    if not r.kernel_unmeasured:
        return []
    why = ("kernel hashes off" if r.kernel.kind.hashes_added else
           f"QEMU adds no kernel hashes for {r.kernel.kind.description}")
    return [f"{UNPINNED} ({why}): the allowlist entry accepts any VM started with this firmware, "
            f"whatever it boots"]


def require_allowlistable(algorithm: str) -> None:
    """Only a CSV (SM3) digest can be allowlisted: an SHA-256 value is AMD SEV's, which no CSV report carries."""
    if algorithm != "sm3":
        raise UsageError(f"--emit-policy writes a CSV allowlist entry (an SM3 measure), but --algorithm {algorithm} "
                         f"gives an AMD SEV digest, which no CSV report carries",
                         "drop --algorithm sha256 (use it only to cross-check SEV tools)")


def policy_snippet(r: DigestResult, label: str) -> str:
    """A ``[[measurements]]`` entry for the policy file's allowlist, with its inputs in comments."""
    require_allowlistable(r.algorithm)
    unmeasured = "  (not measured)" if r.kernel_unmeasured else ""
    lines = [f"# {r.algorithm} launch digest ({r.generation}) computed by csvverify digest from:",
             f"#   firmware {_printable(r.firmware.name)}  sha256 {r.firmware.sha256.hex()}"]
    if r.kernel is not None:
        lines.append(f"#   kernel {_printable(r.kernel.name)}  sha256 {r.kernel.sha256.hex()}{unmeasured}")
        if r.initrd is not None:
            lines.append(f"#   initrd {_printable(r.initrd.name)}  sha256 {r.initrd.sha256.hex()}{unmeasured}")
        lines.append(f"#   cmdline {_printable(r.cmdline or b'', quote=True)}{unmeasured}")
        lines.append(f"#   kernel hashes {'on' if r.table else 'off'}")
    lines += [f"#   vmsa {_printable(p.name)}  sha256 {p.sha256.hex()}" for p in r.vmsa]
    lines += [f"# warning: {_printable(w)}" for w in policy_warnings(r) + list(r.warnings)]
    lines += ["[[measurements]]", f"value = {toml_string(r.hex)}", f"label = {toml_string(label)}"]
    return "\n".join(lines) + "\n"


def default_label(r: DigestResult) -> str:
    parts = [r.firmware.name.rsplit("/", 1)[-1]]
    parts += [x.name.rsplit("/", 1)[-1] for x in (r.kernel, r.initrd) if x is not None]
    return " + ".join(parts)


def toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped; a byte of a name that was not
    UTF-8 becomes the text \\xNN (a policy file must stay UTF-8)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        elif 0xDC80 <= ord(ch) <= 0xDCFF:  # a byte of a name that was not UTF-8: TOML files must be UTF-8
            out.append(f"\\\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _kernel_lines(r: DigestResult) -> list[str]:
    k = r.kernel
    kind = k.kind.kind + (f" (boot protocol {k.kind.protocol_text})" if k.kind.protocol else "")
    if k.kind.elf is not None and k.kind.elf.pvh_entry is not None:
        kind += f" (PVH entry 0x{k.kind.elf.pvh_entry:x})"
    if r.table is not None:
        state = "on: the 176-byte table below is measured after the firmware"
    elif k.kind.elf is not None and k.kind.elf.refusal:
        state = f"not measured: QEMU refuses this ELF kernel ('{k.kind.elf.refusal}')"
    elif not k.kind.hashes_added:
        state = f"not measured: QEMU adds no hashes for {k.kind.description}"
    else:
        state = "off: kernel, initrd and cmdline are not measured"
    lines = [_row("kernel hashes", state),
             _row("  kernel", f"{_printable(k.name)}, {k.size} bytes, {kind}"),
             _row("    sha256", k.sha256.hex())]
    if r.initrd is not None:
        lines += [_row("  initrd", f"{_printable(r.initrd.name)}, {r.initrd.size} bytes"),
                  _row("    sha256", r.initrd.sha256.hex())]
    else:
        lines.append(_row("  initrd", "none (the entry holds the SHA-256 of the empty string)"))
    cmdline = r.cmdline or b""
    given = _printable(cmdline, quote=True) if r.cmdline is not None else "none (no -append)"
    lines += [_row("  cmdline", f"{given}, {len(cmdline)} bytes + NUL"),
              _row("    sha256", f"{r.cmdline_sha256.hex()} (cmdline and its NUL)")]
    return lines


def _table_lines(table: bytes | None) -> list[str]:
    if table is None:
        return [_row("hash table", "not measured")]
    lines = [_row("hash table", f"{len(table)} bytes, {table.hex()}")]
    for f in table_fields(table):
        lines.append(f"  +{f.offset:03d}  {f.data.hex():<64}  {f.meaning}")
    return lines


def _footer_text(r: DigestResult) -> str:
    fw = r.firmware
    if not fw.footer.present:
        return fw.footer.problem or "empty"
    parts = []
    area = fw.hash_area
    short = ovmf.short_hash_area(fw.footer)
    if short is not None:
        parts.append(f"kernel-hashes area entry too short ({short} bytes, needs {ovmf.HASH_AREA_FIELDS})")
    else:
        parts.append("no kernel-hashes area" if area is None else
                     f"kernel-hashes area base 0x{area.base:x} size 0x{area.size:x}"
                     + (" (unusable: kernel hashes unsupported)" if area.base == 0 or area.size < PADDED_TABLE_SIZE
                        else ""))
    if fw.reset_vector is not None:
        parts.append(f"SEV-ES reset vector 0x{fw.reset_vector:x}")
    parts.append(f"{len(fw.footer.entries)} entries")
    return ", ".join(parts)


def _file(f) -> dict:
    return {"path": f.name, "size": f.size, "sha256": f.sha256.hex()}


def _elf_boot(elf) -> dict | None:
    return elf and {"pvh_entry": elf.pvh_entry, "qemu_refuses": elf.refusal, "unchecked": elf.unchecked}


def _text(data: bytes) -> str:
    """For JSON (which also carries the hex): undecodable bytes as the text ``\\xNN``."""
    return data.decode("utf-8", "backslashreplace")


def _printable(text: str | bytes, quote: bool = False) -> str:
    """``text`` on one line, unambiguously (a backslash is doubled: ``\\xff`` always stands for a byte)."""
    return printable(text, unambiguous=True, quote=quote)


def _row(key: str, value: str) -> str:
    return f"{key:<16} {value}"
