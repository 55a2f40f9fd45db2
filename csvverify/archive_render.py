"""Text renderings for audit summaries and the ``db`` commands (plain strings; the CLI prints them).

File names, chip ids and reasons come from the evidence: characters that are not printable (terminal
escapes, bidi controls) are shown as ``\\xNN`` / ``\\uNNNN`` escapes, never sent to the terminal raw.
"""

from csvverify import text
from csvverify.replay import LABELS

OUTCOME_ORDER = ("pass", "fail", "incomplete", "error")


def printable(value) -> str:
    return "" if value is None else text.printable(str(value))


def _escaped(lines: list[str]) -> str:
    """Lines (none with a line break of its own) joined, each one escaped whole: every field in it, whether it came
    from the evidence or from an archive file anyone could have edited."""
    return "\n".join(map(text.printable, lines))


def _table(headers, rows, right=()) -> list[str]:
    rows = [[printable(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(headers)] + [line(r) for r in rows]


def summary_text(summary, command: str = "audit") -> str:
    s = summary
    rate = f" ({s.rate:.0f}/s)" if s.seconds else ""
    lines = [f"{command}: {s.inputs} inputs in {s.seconds:.1f} s{rate}; run {s.run_id if s.run_id else '(dry run)'}, "
             f"settings {s.settings_sha256[:16]}…"]
    if command.startswith("reappraise"):
        lines.append("carried over from the stored verdicts' settings: " + (", ".join(map(printable, s.carried))
                                                                          if s.carried else "nothing"))
    for weaker in s.weaker:
        lines.append(f"weaker than the stored verdicts' settings (accepted): {weaker}")
    outcomes = [o for o in OUTCOME_ORDER if s.new[o] or s.archived[o]] + sorted(
        o for o in set(s.new) | set(s.archived) if o not in OUTCOME_ORDER)
    rows = [(o, s.new[o], s.archived[o], s.new[o] + s.archived[o]) for o in outcomes]
    rows.append(("total", sum(s.new.values()), sum(s.archived.values()), s.inputs))
    lines += [""] + _table(["outcome", "new", "already archived", "total"], rows, right=(1, 2, 3))
    if s.failing_checks:
        lines += [""] + _table(["failing check", "inputs"], s.failing_checks.most_common(), right=(1,))
    if s.flips:
        lines += [""] + _table(["re-appraisal flips", "to", "verdicts"],
                               [(a, b, n) for (a, b), n in sorted(s.flips.items())], right=(2,))
        for base, new, path, old, now in s.flipped:
            lines.append(f"  verdict {base} → {new if new is not None else '(not stored)'}: {old} → {now}  "
                         f"{printable(path)}")
    if s.withheld:
        lines.append(f"\n{s.withheld} stored reports were not re-appraised: the archive holds no bytes for them "
                     "(they carried the VM's sealing key, did not decode, or came from standard input)")
    if s.failures:
        lines += ["", f"first {len(s.failures)} inputs that did not pass (csvverify db show ID):"]
        lines += [f"  {vid if vid is not None else '-':>8}  {outcome:<10} {printable(path)}  [{failed or '-'}]"
                  for vid, path, outcome, failed in s.failures]
    flagged = [(k, s.replay[k]) for k in LABELS if s.replay.get(k)]
    if flagged:
        lines += ["", "replay indicators touching this batch (csvverify db duplicates):"]
        for kind, n in flagged:
            extra = f" (more than {s.replay['vm_threshold']})" if kind == "chip_vms" else ""
            lines.append(f"  {n} × {LABELS[kind]}{extra}")
    return "\n".join(lines)


def list_text(items) -> str:
    rows = [(i["id"], i["appraised_at"], i["outcome"], i["exit_class"], i["chip_id"] or "-",
             ",".join(i["failed_checks"]) or "-", i["path"]) for i in items]
    if not rows:
        return "no verdicts match"
    return "\n".join(_table(["id", "time", "outcome", "class", "chip", "failed checks", "path"], rows,
                            right=(0, 3)))


_MARK = {"pass": "pass", "fail": "FAIL", "skipped": "skip", "not-applicable": "n/a"}


def show_text(item: dict) -> str:
    lines = [f"verdict {item['id']}: {item['outcome']} (exit class {item['exit_class']})  {item['path']}",
             f"  appraised   {item['appraised_at']} by csvverify {item['tool_version']} (run {item['run_id']})",
             f"  settings    {item['settings_sha256']}" + (f"  policy {item['policy_sha256']}"
                                                           if item["policy_sha256"] else "  policy -"),
             f"  chain       {'yes' if item['chain'] else 'no'}; trust roots {', '.join(r[:16] + '…' for r in item['trust_roots'])}"]
    if item["collateral"]:
        lines.append(f"  collateral  HSK {item['collateral'].get('hsk')}; CEK {item['collateral'].get('cek')}")
    if item["reappraises"]:
        lines.append(f"  re-appraises verdict {item['reappraises']}")
    for later in item["reappraised_by"]:
        lines.append(f"  re-appraised by verdict {later['id']} ({later['outcome']})")
    rep = item["report"]
    if rep:
        lines.append(f"  report      sha256 {rep['sha256']}, {rep['size'] or '?'} bytes, V{rep['version'] or '?'} "
                     f"{rep['container'] or ''}{'' if rep['bytes_stored'] else ' (bytes not stored)'}")
        for key in ("chip_id", "vm_id", "measure", "user_data", "mnonce", "policy", "sealing_key"):
            if rep.get(key) is not None:
                lines.append(f"    {key:<11} {rep[key]}")
        if rep.get("withheld"):
            lines.append(f"    bytes       not stored: {rep['withheld']}")
        for p in rep["paths"]:
            lines.append(f"    seen at     {p['path']}  ({p['first_seen']})")
    width = max((len(c["id"]) for c in item["checks"]), default=0)
    lines.append("  checks:")
    lines += [f"    {_MARK.get(c['status'], c['status']):<5} {c['id']:<{width}}  {c['reason'] or ''}"
              for c in item["checks"]]
    for f in item["findings"]:
        lines.append(f"  {f['severity']:<7} {f['id']}: {f['message']}")
    if item["hint"]:
        lines.append(f"  hint: {item['hint']}")
    lines.append(f"  hash        {item['hash']} (prev {item['prev_hash'][:16]}…)")
    return _escaped(lines)


def status_text(st: dict) -> str:
    mb = st["size_bytes"] / 1e6
    lines = [f"archive     {st['path']} ({mb:.1f} MB)",
             f"schema      {', '.join(st['migrations'])}",
             f"verdicts    {st['verdicts']}" + ("  (" + ", ".join(f"{k} {v}" for k, v in st["outcomes"].items()) + ")"
                                               if st["outcomes"] else ""),
             f"reports     {st['reports']} ({st['reports_without_bytes']} without bytes), {st['report_paths']} paths, "
             f"{st['chips']} chips",
             f"runs        {st['runs']} ({st['unfinished_runs']} unfinished)"]
    if st["head"]:
        lines.append(f"period      {st['first_verdict_at']} … {st['last_verdict_at']}")
        lines.append(f"chain head  verdict {st['head']['verdict_id']}: {st['head']['hash']}")
        lines.append("            (record `csvverify db head` elsewhere; `db check --expect-head ID:HASH` later proves "
                     "the history up to it is still there)")
    return _escaped(lines)


def check_text(report) -> str:
    uncovered = (f"; {report.uncovered_reports} report rows predate report coverage (checked against their own "
                 f"bytes, or by chip id alone when they have none)" if report.uncovered_reports else "")
    if report.ok:
        head = f"verdict {report.head_id}, {report.head_hash}" if report.head_id else "empty"
        extra = "; the expected head is part of the chain" if report.expected_head_found else ""
        return f"intact: {report.verdicts} verdicts, every link verified; head {head}{extra}{uncovered}"
    lines = [f"BROKEN: {report.verdicts} verdicts checked{uncovered}"]
    for p in report.problems:
        lines.append(f"  {p.kind}: {printable(p.message)}")
    for category, n in sorted(report.omitted.items()):
        lines.append(f"  … and {n} more problems with {category} (--json lists the same first ones)")
    if report.expected_head_found is False:
        lines.append("  the expected head is not in the verified chain: the history up to it was rewritten or cut")
    if report.head_id:
        lines.append(f"  the chain holds up to verdict {report.head_id} ({report.head_hash})")
    return "\n".join(lines)


def head_line(report) -> str:
    """``ID:HASH`` of the verified head, the form ``db check --expect-head`` takes (``0:000…`` when empty)."""
    return f"{report.head_id or 0}:{report.head_hash}"


def duplicates_text(dup: dict) -> str:
    lines = []
    for kind in LABELS:
        part = dup[kind]
        extra = f" (more than {dup['vm_threshold']})" if kind == "chip_vms" else ""
        lines.append(f"{part['label']}{extra}: {part['groups']}")
        for group in part["shown"]:
            value = group["value"]
            shown = value if len(str(value)) <= 40 else f"{str(value)[:40]}…"
            unit = "VM ids" if kind == "chip_vms" else ("paths" if kind == "paths" else "reports")
            lines.append(f"  {shown}  {group['count']} {unit}")
            for ex in group["examples"]:
                if kind == "chip_vms":
                    lines.append(f"    vm {ex['vm_id'] or ''}  {ex['reports']} reports")
                else:
                    lines.append(f"    {ex['sha256'][:16]}…  chip {ex['chip_id'] or '-'}  "
                                 f"{ex['path'] or '-'}  ({ex['first_seen']})")
        if part["groups"] > len(part["shown"]):
            lines.append(f"  … {part['groups'] - len(part['shown'])} more (--limit)")
    return _escaped(lines)
