"""``db check`` beyond the hash chain: the tables the verdicts point at (docs/archive.md, "What db check
covers").

* reports: stored bytes hash to their sha256 and match their size; bytes are missing only for a recorded
  reason (``withheld``) and never kept for a secret or an input that did not decode; no report row lacks a
  verdict. That each verdict's report row still has the fields it covered is checked in the chain scan;
  rows no verdict covers (written before migration m002) have their decoded fields derived again from
  their bytes, when they have bytes.
* settings: each description still hashes to its fingerprint; every fingerprint a verdict or run names exists.
* runs: every finished run stored exactly the number of new verdicts it recorded, under its own settings;
  every run a verdict names exists.
* report_paths: every verdict's path row exists and no path row names an unknown report. Path rows of
  inputs that were already archived (no new verdict) are not covered by anything and are not checked.
"""

import hashlib
import json

from csvverify.archive import STDIN, WITHHELD_NOT_A_REPORT, WITHHELD_SECRET


def check_runs(conn, report, per_run, run_settings) -> None:
    """``per_run``: run id -> verdicts stored with it; ``run_settings``: run id -> settings those verdicts name."""
    runs = {rid: (recorded, finished, settings) for rid, recorded, finished, settings in conn.execute(
        "SELECT id, new_verdicts, finished_at, settings_sha256 FROM runs")}
    for rid, stored in sorted(per_run.items()):
        if rid not in runs:
            report.add("runs", "deletion", None, f"run {rid} is missing: {stored} verdicts name it")
            continue
        recorded, finished, settings = runs[rid]
        if finished is not None and recorded != stored:
            kind = "deletion" if recorded is not None and recorded > stored else "insertion"
            report.add("runs", kind, None, f"run {rid} recorded {recorded} new verdicts, {stored} are stored: "
                                           f"verdicts of this run were {'deleted' if kind == 'deletion' else 'added'}")
        others = run_settings.get(rid, set()) - {settings}
        if others:
            report.add("runs", "edit", None, f"run {rid} names settings {str(settings)[:16]}…, its verdicts "
                                             f"{', '.join(s[:16] + '…' for s in sorted(others))}")
    for rid, (recorded, finished, _) in sorted(runs.items()):
        if finished is not None and recorded and rid not in per_run:
            report.add("runs", "deletion", None, f"run {rid} recorded {recorded} new verdicts, none are stored: "
                                                 f"they were deleted")


_DECODED = ("version", "container", "chip_id", "vm_id", "measure", "user_data", "mnonce", "policy", "sealing_key")


def check_reports(conn, report) -> None:
    """One pass over the report rows (the caller holds one read transaction, so everything is seen as of then)."""
    covered = ("EXISTS (SELECT 1 FROM verdicts v WHERE v.report_sha256 = r.sha256 AND v.report_fields_sha256 "
               "IS NOT NULL)")
    named = "EXISTS (SELECT 1 FROM verdicts v WHERE v.report_sha256 = r.sha256)"
    unnamed, uncovered = [], 0
    for sha, data, size, withheld, is_covered, is_named, *decoded in conn.execute(
            f"SELECT sha256, bytes, size, withheld, {covered}, {named}, {', '.join(_DECODED)} FROM reports r"):
        if not is_named:
            unnamed.append(sha)
        elif not is_covered:
            uncovered += 1
        if data is not None:
            if hashlib.sha256(data).hexdigest() != sha:
                report.add("reports", "edit", None, f"report {sha[:16]}…: the stored bytes do not hash to its "
                                                    f"sha256")
                continue
            if size != len(data):
                report.add("reports", "edit", None, f"report {sha[:16]}…: size {size}, but {len(data)} bytes "
                                                    f"are stored")
            if withheld in (WITHHELD_SECRET, WITHHELD_NOT_A_REPORT):
                report.add("reports", "insertion", None, f"report {sha[:16]}…: bytes are stored although it is "
                                                         f"marked {withheld} (csvverify never keeps those)")
            elif not is_covered and decoded[0] is not None and _decode(data, decoded[0]) != tuple(decoded):
                report.add("reports", "edit", None, f"report {sha[:16]}…: its decoded fields (chip id, mnonce, "
                                                    f"user data, …) differ from what its stored bytes hold")
        elif withheld is None and not _legacy_without_bytes(conn, sha, is_covered, decoded[-1], decoded[0]):
            report.add("reports", "deletion", None, f"report {sha[:16]}…: its bytes were deleted (no reason for "
                                                    f"their absence is recorded)")
    for sha in unnamed:
        report.add("reports", "insertion", None, f"report {sha[:16]}… is named by no verdict: added outside "
                                                 f"csvverify (or its verdicts were deleted)")
    report.uncovered_reports = uncovered


def _decode(data: bytes, version: int) -> tuple | None:
    """The decoded columns of a report row written before coverage, derived again from its bytes (with the
    layout the row names, as --report-version may have forced it)."""
    from csvverify.errors import InputError
    from csvverify.inputs import decode_container, parse_evidence

    try:
        evidence = decode_container(data, "archived report")
        try:
            fields = parse_evidence(evidence, "archived report").summary()
        except InputError:
            fields = None
        if fields is None or fields["version"] != version:
            fields = parse_evidence(evidence, "archived report", version).summary()
    except InputError:
        return None
    return tuple(evidence.container if k == "container" else fields[k] for k in _DECODED)


def _legacy_without_bytes(conn, sha: str, is_covered: bool, sealed: str | None, version: int | None) -> bool:
    """A row without bytes and without a recorded reason is fine only when written before migration m002
    (no verdict covers it) for a reason that was implicit then: a sealing key, no decoded fields, or
    standard input as the only source."""
    if is_covered:
        return False
    if sealed == "present" or version is None:
        return True
    return conn.execute("SELECT 1 FROM verdicts WHERE report_sha256 = ? AND path != ? LIMIT 1",
                        (sha, STDIN)).fetchone() is None


def check_settings(conn, report) -> None:
    for sha, description in conn.execute("SELECT sha256, description FROM settings"):
        if hashlib.sha256(description.encode()).hexdigest() != sha:
            report.add("settings", "edit", None, f"settings {sha[:16]}…: the description no longer hashes to the "
                                                 f"fingerprint (it was changed)")
        else:
            try:
                json.loads(description)
            except ValueError:
                report.add("settings", "edit", None, f"settings {sha[:16]}…: the description is not JSON")
    for (sha,) in conn.execute("SELECT DISTINCT v.settings_sha256 FROM verdicts v WHERE NOT EXISTS "
                               "(SELECT 1 FROM settings s WHERE s.sha256 = v.settings_sha256)"):
        report.add("settings", "deletion", None, f"settings {sha[:16]}… named by verdicts are missing")


def check_paths(conn, report) -> None:
    for vid, sha, path in conn.execute(
            "SELECT v.id, v.report_sha256, v.path FROM verdicts v WHERE v.report_sha256 IS NOT NULL AND v.path != ? "
            "AND NOT EXISTS (SELECT 1 FROM report_paths p WHERE p.report_sha256 = v.report_sha256 AND p.path = v.path)",
            (STDIN,)):
        report.add("paths", "deletion", vid, f"the path row of verdict {vid} ({sha[:16]}… at {path!r}) is missing")
    for sha, path in conn.execute("SELECT p.report_sha256, p.path FROM report_paths p WHERE NOT EXISTS "
                                  "(SELECT 1 FROM reports r WHERE r.sha256 = p.report_sha256)"):
        report.add("paths", "insertion", None, f"path row {path!r} names report {sha[:16]}…, which is not stored")
