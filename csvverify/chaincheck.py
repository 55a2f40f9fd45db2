"""``db check``: is the verdict history intact?

Walks the verdicts in id order and recomputes each row's hash from its content, its checks, the fields of
its report row and the hash it claims as ``prev_hash``. The first row that breaks the chain is named, with
the kind of change it implies (edit, deletion or insertion), read from which links still hold around it and
from the verdict counts that runs recorded. The append-only ``chain_heads`` table catches a tail cut off
together with its rows; ``csvverify.integrity`` checks the tables around the chain (reports, settings,
runs, paths).

The chain has no secret key: someone who rewrites every row from a point onwards (or cuts the tail, with
the chain heads and run counts) leaves a consistent archive. ``db head`` prints the head to record
somewhere else; ``db check --expect-head ID:HASH`` later proves the history up to it is still there.
"""

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from csvverify.archive import (COVERED_REPORT_FIELDS, GENESIS, VERDICT_FIELDS, content_sha256, link_hash,
                               linked_content, report_fields_sha256)
from csvverify.errors import UsageError

PROBLEMS_PER_KIND = 10  # integrity problems listed per category; the rest are counted
_RUN = VERDICT_FIELDS.index("run_id")
_SETTINGS = VERDICT_FIELDS.index("settings_sha256")
_CHIP = VERDICT_FIELDS.index("chip_id")
_REPORT = VERDICT_FIELDS.index("report_sha256")
_STORED_CHIP = COVERED_REPORT_FIELDS.index("chip_id")


class Row(NamedTuple):
    id: int
    prev: str
    hash: str
    content: str  # what the link hashes after prev_hash (archive.linked_content)
    run_id: int | None = None

    @property
    def self_consistent(self) -> bool:
        return link_hash(self.prev, self.content) == self.hash


@dataclass
class Problem:
    kind: str  # edit, deletion or insertion
    verdict_id: int | None
    message: str

    def to_dict(self) -> dict:
        return {"kind": self.kind, "verdict_id": self.verdict_id, "message": self.message}


@dataclass
class ChainReport:
    verdicts: int = 0
    head_id: int | None = None
    head_hash: str = GENESIS
    problems: list[Problem] = field(default_factory=list)
    expected_head_found: bool | None = None
    uncovered_reports: int = 0  # report rows no verdict's hash covers (written before migration m002)
    omitted: Counter = field(default_factory=Counter)  # category -> problems found beyond PROBLEMS_PER_KIND
    listed: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.problems and self.expected_head_found is not False

    def add(self, category: str, kind: str, verdict_id: int | None, message: str) -> None:
        if self.listed[category] >= PROBLEMS_PER_KIND:
            self.omitted[category] += 1
            return
        self.listed[category] += 1
        self.problems.append(Problem(kind, verdict_id, message))

    def to_dict(self) -> dict:
        return {"schema": "csvverify/archive-check/v1", "intact": self.ok, "verdicts": self.verdicts,
                "head": {"verdict_id": self.head_id, "hash": self.head_hash},
                "expected_head_found": self.expected_head_found,
                "uncovered_reports": self.uncovered_reports,
                "problems": [p.to_dict() for p in self.problems],
                "problems_not_listed": sum(self.omitted.values())}


def parse_expected_head(text: str) -> tuple[int | None, str]:
    """``--expect-head``: ``ID:HASH`` as ``db head`` prints it, or the bare 64-hex-digit HASH."""
    match = re.fullmatch(r"(?:(\d+):)?([0-9a-fA-F]{64})", text.strip())
    if match is None:
        raise UsageError(f"--expect-head {text!r}: not ID:HASH or a 64-hex-digit hash",
                         hint="pass what `csvverify db head` printed, e.g. 1500:3f2a…")
    return (int(match.group(1)) if match.group(1) else None), match.group(2).lower()


class _Scan:
    """One ordered pass over the verdicts (merged with their checks and report rows; memory stays flat) that
    also tallies each run's verdicts and collects the report-row findings."""

    def __init__(self, conn):
        self.conn = conn
        self.per_run: Counter = Counter()
        self.run_settings: dict = {}  # run id -> the settings fingerprints its verdicts name
        self.orphan_checks = 0
        self.covering = False
        self.findings: list[tuple] = []  # report-row problems, listed after the chain's first broken link

    def rows(self):
        covered = ", ".join(f"r.{c}" for c in COVERED_REPORT_FIELDS)
        verdicts = self.conn.execute(
            f"SELECT v.id, {', '.join('v.' + f for f in VERDICT_FIELDS)}, v.prev_hash, v.hash, "
            f"v.report_fields_sha256, {covered} FROM verdicts v LEFT JOIN reports r ON r.sha256 = v.report_sha256 "
            "ORDER BY v.id")
        checks = self.conn.execute("SELECT c.verdict_id, c.position, c.check_id, c.status, r.text FROM checks c "
                                   "LEFT JOIN reasons r ON r.id = c.reason_id ORDER BY c.verdict_id, c.position")
        pending = next(checks, None)
        width = len(VERDICT_FIELDS)
        for row in verdicts:
            vid, values = row[0], row[1:1 + width]
            prev, digest, fields_sha, stored = row[1 + width], row[2 + width], row[3 + width], row[4 + width:]
            mine = []
            while pending is not None and pending[0] <= vid:
                if pending[0] == vid:
                    mine.append(pending[1:])
                else:
                    self.orphan_checks += 1
                pending = next(checks, None)
            self._tally(vid, values, fields_sha, stored)
            yield Row(vid, prev, digest, linked_content(content_sha256(values, mine), fields_sha), values[_RUN])
        while pending is not None:
            self.orphan_checks += 1
            pending = next(checks, None)

    def _tally(self, vid: int, values, fields_sha: str | None, stored) -> None:
        run = values[_RUN]
        if run is not None:
            self.per_run[run] += 1
            self.run_settings.setdefault(run, set()).add(values[_SETTINGS])
        sha = values[_REPORT]
        if sha is None:
            return

        def add(kind: str, message: str) -> None:
            self.findings.append(("reports", kind, vid, message))

        if fields_sha is not None:
            self.covering = True
        elif self.covering:  # since migration m002 csvverify covers the report row of every verdict that has one
            add("insertion", f"verdict {vid} does not cover its report row although earlier verdicts do: it was "
                             f"written outside csvverify")
        if stored[0] is None:
            add("deletion", f"the report row of verdict {vid} ({sha[:16]}…) is missing")
        elif fields_sha is not None and report_fields_sha256(stored) != fields_sha:
            add("edit", f"report {sha[:16]}… was changed after verdict {vid} covered it: its decoded fields (chip id, "
                        f"mnonce, user data, …) differ")
        elif fields_sha is None and None not in (stored[_STORED_CHIP], values[_CHIP]) \
                and stored[_STORED_CHIP] != values[_CHIP]:  # uncovered: the other fields are compared with its bytes
            add("edit", f"report {sha[:16]}… names chip {stored[_STORED_CHIP]!r}, verdict {vid} chip {values[_CHIP]!r}")


def _run_count(conn, run_id: int | None) -> tuple[int | None, int]:
    """(verdicts the run recorded when it finished or None, verdicts stored with its id)."""
    if run_id is None:
        return None, 0
    recorded = conn.execute("SELECT new_verdicts FROM runs WHERE id = ? AND finished_at IS NOT NULL",
                            (run_id,)).fetchone()
    stored = conn.execute("SELECT COUNT(*) FROM verdicts WHERE run_id = ?", (run_id,)).fetchone()[0]
    return (recorded[0] if recorded else None), stored


def _beyond_head(row: Row, last_head_id: int, conn) -> Problem:
    """Rows after the last recorded chain head never come from csvverify (a batch's rows and its head are one
    transaction): either the batch's last rows were deleted with their head, or rows were added."""
    recorded, stored = _run_count(conn, row.run_id)
    where = f"verdict {row.id} lies beyond the last recorded chain head (verdict {last_head_id})"
    if recorded is not None and recorded > stored:
        return Problem("deletion", None, f"{where}: the tail was cut, with its chain head: run {row.run_id} "
                                         f"recorded {recorded} new verdicts, {stored} are stored")
    if recorded is not None and recorded == stored:
        return Problem("deletion", None, f"{where}: the chain head recorded after the last verdict of run "
                                         f"{row.run_id} was deleted (the run's {stored} verdicts are all there)")
    why = (f"run {row.run_id} recorded {recorded} new verdicts, {stored} are stored" if recorded is not None
           else f"run {row.run_id} never finished, so its count cannot tell whether the batch's last verdicts were "
                "deleted with their chain head instead")
    return Problem("insertion", row.id, f"{where}: it was added outside csvverify ({why})")


def _classify(row: Row, nxt: Row | None, good: Row | None, before_good: str, expected_prev: str, gap: bool,
              last_head_id: int, conn) -> Problem:
    after = f"verdict {good.id}" if good else "the start of the chain"
    if row.id > last_head_id and row.self_consistent and row.prev == expected_prev and not gap:
        return _beyond_head(row, last_head_id, conn)
    if nxt is not None and nxt.prev == expected_prev and nxt.self_consistent:
        return Problem("insertion", row.id, f"verdict {row.id} was inserted: verdict {nxt.id} links directly to "
                                            f"{after}")
    if good is not None and row.prev == before_good and row.self_consistent:
        return Problem("insertion", good.id, f"verdict {good.id} was inserted: verdict {row.id} links past it")
    if gap and row.prev != expected_prev:
        first = good.id + 1 if good else 1
        missing = f"verdict {first}" if first == row.id - 1 else f"verdicts {first}..{row.id - 1}"
        return Problem("deletion", first, f"{missing} deleted: verdict {row.id} links to a row that is no longer "
                                          f"there")
    if not row.self_consistent:
        how = "" if row.prev == expected_prev else " and its link rewritten"
        return Problem("edit", row.id, f"verdict {row.id} was changed{how}: its content, its checks or its report "
                                       f"row's fields no longer match its hash")
    if row.prev != expected_prev:
        found = conn.execute("SELECT id FROM verdicts WHERE hash = ? LIMIT 1", (row.prev,)).fetchone()
        if found is not None:
            return Problem("insertion", row.id, f"verdict {row.id} links to verdict {found[0]}, not to {after}: "
                                                f"a copied or inserted row")
        if good is not None:
            return Problem("edit", good.id, f"verdict {good.id} was rewritten with a recomputed hash: verdict "
                                            f"{row.id} still links to its former hash")
        return Problem("deletion", row.id, f"verdict {row.id} does not start the chain: earlier verdicts were "
                                           f"deleted and the ids renumbered")
    if row.id > last_head_id:
        return _beyond_head(row, last_head_id, conn)
    return Problem("edit", row.id, f"verdict ids jump from {good.id if good else 0} to {row.id} although the chain "
                                   f"links: ids were renumbered")


def _heads(conn, report: ChainReport) -> None:
    last = conn.execute("SELECT MAX(id) FROM verdicts").fetchone()[0] or 0
    for head_id, recorded, found in conn.execute(
            "SELECT h.verdict_id, h.hash, v.hash FROM chain_heads h LEFT JOIN verdicts v ON v.id = h.verdict_id "
            "ORDER BY h.id"):
        if found is None and head_id > last:
            report.problems.append(Problem("deletion", last + 1, f"the tail was cut: a chain head records verdict "
                                                                 f"{head_id}, the last verdict is {last}"))
            return
        if found != recorded:
            report.problems.append(Problem("edit", head_id, f"verdict {head_id} differs from the chain head "
                                                            f"recorded for it (hash {recorded[:16]}…)"))
            return


def check_archive(conn, expect_head: str | None = None) -> ChainReport:
    """Check the whole archive in one read transaction (one snapshot, even while audits are writing)."""
    expected = parse_expected_head(expect_head) if expect_head is not None else None
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        return _check(conn, expected)
    finally:
        if own:
            conn.execute("COMMIT")


def _check(conn, expected: tuple[int | None, str] | None) -> ChainReport:
    from csvverify import integrity

    report = ChainReport()
    last_head_id = conn.execute("SELECT COALESCE(MAX(verdict_id), 0) FROM chain_heads").fetchone()[0]
    scan = _Scan(conn)
    rows = scan.rows()
    good, before_good, expected_prev = None, GENESIS, GENESIS
    chain_broken = False
    if expected is not None:
        report.expected_head_found = False
    row = next(rows, None)
    while row is not None:
        nxt = next(rows, None)
        report.verdicts += 1
        gap = row.id != (good.id + 1 if good else 1)
        if chain_broken or (row.self_consistent and row.prev == expected_prev and not gap
                            and row.id <= last_head_id):
            if not chain_broken:
                good, before_good, expected_prev = row, expected_prev, row.hash
                if expected is not None and row.hash == expected[1] and expected[0] in (None, row.id):
                    report.expected_head_found = True
        else:
            report.problems.append(_classify(row, nxt, good, before_good, expected_prev, gap, last_head_id, conn))
            chain_broken = True
        row = nxt
    if scan.orphan_checks:
        report.problems.append(Problem("insertion", None, f"{scan.orphan_checks} check rows belong to no verdict"))
    if good is not None:
        report.head_id, report.head_hash = good.id, good.hash
    if not report.problems:
        _heads(conn, report)
    for finding in scan.findings:
        report.add(*finding)
    integrity.check_runs(conn, report, scan.per_run, scan.run_settings)
    integrity.check_reports(conn, report)
    integrity.check_settings(conn, report)
    integrity.check_paths(conn, report)
    return report
