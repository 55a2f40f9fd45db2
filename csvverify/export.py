"""Exports of the archive: csv (one row per verdict), json, jsonl (verdicts with their checks) and a single
self-contained html summary (inline style, no script, nothing fetched from a network). CSV cells that a
spreadsheet would read as a formula are prefixed with an apostrophe.

Everything streams: memory does not grow with the archive.
"""

import csv
import html
import json

from csvverify import __version__
from csvverify.archive_query import Filters, verdict_record, verdict_rows
from csvverify.replay import LABELS, replay_counts

FORMATS = ("csv", "json", "jsonl", "html")
SCHEMA = "csvverify/archive-export/v1"
CSV_FIELDS = ("id", "appraised_at", "path", "report_sha256", "chip_id", "outcome", "exit_class", "failed_checks",
              "tool_version", "settings_sha256", "policy_sha256", "chain", "reappraises", "hash")


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    """A CSV cell that a spreadsheet shows as text: a value that would start a formula (a file name or chip id
    beginning with = + - @, tab or CR) gets a leading apostrophe (the OWASP CSV-injection advice)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def export(conn, fmt: str, out, filters: Filters = Filters()) -> int:
    """Write the verdicts matching ``filters`` to the text stream ``out``; returns how many."""
    if fmt == "html":
        return write_html(conn, out, filters)
    count = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_FIELDS)
        for row in verdict_rows(conn, filters):
            item = verdict_record(conn, row, with_checks=False)
            item["failed_checks"] = " ".join(item["failed_checks"])
            item["chain"] = int(item["chain"])  # 0/1, as the schema documents it
            writer.writerow([_cell(item[f]) for f in CSV_FIELDS])
            count += 1
        return count
    if fmt == "json":
        tool = json.dumps({"name": "csvverify", "version": __version__})
        out.write(f'{{"schema": "{SCHEMA}", "tool": {tool}, "verdicts": [')
    for row in verdict_rows(conn, filters):
        text = json.dumps(verdict_record(conn, row), ensure_ascii=False)
        if fmt == "json":
            out.write(("\n" if count == 0 else ",\n") + text)
        else:
            out.write(text + "\n")
        count += 1
    if fmt == "json":
        out.write("\n]}\n")
    return count


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#176f2c}.fail,.error{color:#b00020}.incomplete{color:#8a5a00}
code{font-size:.92em}
"""


def _table(headers, rows, numeric=()) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>"]
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            text = html.escape("" if value is None else str(value))
            if i in numeric:
                cells.append(f'<td class="n">{text}</td>')
            elif headers[i] == "outcome":
                cells.append(f'<td class="{text}">{text}</td>')
            else:
                cells.append(f"<td><code>{text}</code></td>" if headers[i] in ("measure", "sha256", "hash")
                             else f"<td>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    if len(out) == 1:
        out.append(f'<tr><td colspan="{len(headers)}">none</td></tr>')
    return "\n".join(out) + "</table>"


def write_html(conn, out, filters: Filters = Filters(), rows_per_table: int = 200) -> int:
    where, args = filters.where()

    def q(sql, extra=()):
        return conn.execute(sql, list(args) + list(extra)).fetchall()

    total = q(f"SELECT COUNT(*) FROM verdicts v{where}")[0][0]
    outcomes = q(f"SELECT v.outcome, COUNT(*) FROM verdicts v{where} GROUP BY v.outcome ORDER BY 2 DESC")
    failing = q(f"SELECT c.check_id, COUNT(*), COUNT(DISTINCT v.chip_id) FROM checks c JOIN verdicts v "
                f"ON v.id = c.verdict_id{where + ' AND' if where else ' WHERE'} c.status = 'fail' "
                f"GROUP BY c.check_id ORDER BY 2 DESC")
    chips = q(f"SELECT v.chip_id, COUNT(*), SUM(v.outcome = 'pass'), SUM(v.outcome = 'fail'), "
              f"SUM(v.outcome = 'incomplete'), SUM(v.outcome = 'error'), MIN(v.appraised_at), MAX(v.appraised_at) "
              f"FROM verdicts v{where} GROUP BY v.chip_id ORDER BY 2 DESC LIMIT ?", [rows_per_table])
    measures = q(f"SELECT r.measure, COUNT(*), COUNT(DISTINCT r.chip_id), SUM(v.outcome = 'pass'), "
                 f"SUM(v.outcome != 'pass'), MIN(v.appraised_at), MAX(v.appraised_at) FROM verdicts v "
                 f"JOIN reports r ON r.sha256 = v.report_sha256{where} GROUP BY r.measure ORDER BY 2 DESC LIMIT ?",
                 [rows_per_table])
    recent = q(f"SELECT v.id, v.appraised_at, v.outcome, v.chip_id, v.failed_checks, v.path FROM verdicts v"
               f"{where + ' AND' if where else ' WHERE'} v.outcome != 'pass' ORDER BY v.id DESC LIMIT ?",
               [rows_per_table])
    replay = replay_counts(conn)
    span = q(f"SELECT MIN(v.appraised_at), MAX(v.appraised_at) FROM verdicts v{where}")[0]
    head = conn.execute("SELECT id, hash FROM verdicts ORDER BY id DESC LIMIT 1").fetchone()
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<title>csvverify archive summary</title>", f"<style>{_STYLE}</style></head><body>",
        "<h1>csvverify archive summary</h1>",
        f"<p>{total} verdicts from {html.escape(str(span[0]))} to {html.escape(str(span[1]))}; "
        f"generated by csvverify {html.escape(__version__)}"
        + (f"; chain head: verdict {head[0]}, <code>{html.escape(head[1])}</code>" if head else "") + "</p>",
        "<h2>Outcomes</h2>", _table(["outcome", "verdicts"], outcomes, numeric=(1,)),
        "<h2>Failing checks</h2>", _table(["check", "failures", "chips"], failing, numeric=(1, 2)),
        "<h2>Replay indicators</h2>",
        _table(["indicator", "groups"], [(LABELS[k] + (f" (more than {replay['vm_threshold']})"
                                                        if k == "chip_vms" else ""), replay[k]) for k in LABELS],
               numeric=(1,)),
        f"<h2>Per chip (top {rows_per_table})</h2>",
        _table(["chip", "verdicts", "pass", "fail", "incomplete", "error", "first", "last"], chips,
               numeric=(1, 2, 3, 4, 5)),
        f"<h2>Per measure (top {rows_per_table})</h2>",
        _table(["measure", "verdicts", "chips", "pass", "not pass", "first", "last"], measures, numeric=(1, 2, 3, 4)),
        f"<h2>Latest verdicts that did not pass (up to {rows_per_table})</h2>",
        _table(["id", "time", "outcome", "chip", "failed checks", "path"], recent, numeric=(0,)),
        "</body></html>",
    ]
    out.write("\n".join(parts) + "\n")
    return total
