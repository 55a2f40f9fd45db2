"""``db check``: is the verdict history intact?

Walks the verdicts in id order and recomputes each row's hash from its content, its checks and the hash
it claims as ``prev_hash``. The first row that breaks the chain is named, with the kind of change it
implies (edit, deletion or insertion), read from which links still hold around it. The append-only
``chain_heads`` table (one row per committed batch) catches a truncated or extended tail, and stored
report bytes are checked against their sha256.

The chain has no secret key: someone who rewrites every row from a point onwards, and the heads with
them, leaves a consistent chain. Record the head hash (``db status``) somewhere else and pass it to
``db check --expect-head`` to close that gap.
"""

import hashlib
from dataclasses import dataclass, field
from typing import NamedTuple

from csvverify.archive import GENESIS, VERDICT_FIELDS, content_sha256, link_hash


class Row(NamedTuple):
    id: int
    prev: str
    hash: str
    content: str

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

    @property
    def ok(self) -> bool:
        return not self.problems and self.expected_head_found is not False

    def to_dict(self) -> dict:
        return {"schema": "csvverify/archive-check/v1", "intact": self.ok, "verdicts": self.verdicts,
                "head": {"verdict_id": self.head_id, "hash": self.head_hash},
                "expected_head_found": self.expected_head_found,
                "problems": [p.to_dict() for p in self.problems]}


def _rows(conn):
    """Verdict rows with the content hash recomputed from their columns and their checks (a merge of two
    ordered scans, so memory stays flat), then how many check rows belong to no verdict."""
    verdicts = conn.execute(f"SELECT id, {', '.join(VERDICT_FIELDS)}, prev_hash, hash FROM verdicts ORDER BY id")
    checks = conn.execute("SELECT c.verdict_id, c.position, c.check_id, c.status, r.text FROM checks c "
                          "LEFT JOIN reasons r ON r.id = c.reason_id ORDER BY c.verdict_id, c.position")
    pending = next(checks, None)
    orphans = 0
    for row in verdicts:
        vid, values, prev, digest = row[0], row[1:-2], row[-2], row[-1]
        mine = []
        while pending is not None and pending[0] <= vid:
            if pending[0] == vid:
                mine.append(pending[1:])
            else:
                orphans += 1
            pending = next(checks, None)
        yield Row(vid, prev, digest, content_sha256(values, mine))
    while pending is not None:
        orphans += 1
        pending = next(checks, None)
    yield orphans


def _classify(row: Row, nxt: Row | None, good: Row | None, before_good: str, expected_prev: str, gap: bool,
              last_head_id: int, conn) -> Problem:
    after = f"verdict {good.id}" if good else "the start of the chain"
    if row.id > last_head_id:
        return Problem("insertion", row.id, f"verdict {row.id} lies beyond the last recorded chain head "
                                            f"(verdict {last_head_id}): it was added outside csvverify")
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
        return Problem("edit", row.id, f"verdict {row.id} was changed{how}: its content or its checks no longer "
                                       f"match its hash")
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


def _reports(conn, report: ChainReport) -> None:
    for sha, data in conn.execute("SELECT sha256, bytes FROM reports WHERE bytes IS NOT NULL"):
        if hashlib.sha256(data).hexdigest() != sha:
            report.problems.append(Problem("edit", None, f"report {sha[:16]}…: the stored bytes do not hash to "
                                                         f"its sha256"))
            return


def check_archive(conn, expect_head: str | None = None) -> ChainReport:
    """Check the whole archive in one read transaction (one snapshot, even while audits are writing)."""
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        return _check(conn, expect_head)
    finally:
        if own:
            conn.execute("COMMIT")


def _check(conn, expect_head: str | None) -> ChainReport:
    report = ChainReport()
    last_head_id = conn.execute("SELECT COALESCE(MAX(verdict_id), 0) FROM chain_heads").fetchone()[0]
    rows = _rows(conn)
    good, before_good, expected_prev = None, GENESIS, GENESIS
    if expect_head is not None:
        report.expected_head_found = False
    row = next(rows)
    while isinstance(row, Row):
        nxt = next(rows)
        report.verdicts += 1
        if expect_head is not None and row.hash == expect_head:
            report.expected_head_found = True
        gap = row.id != (good.id + 1 if good else 1)
        if report.problems or (row.self_consistent and row.prev == expected_prev and not gap
                               and row.id <= last_head_id):
            if not report.problems:
                good, before_good, expected_prev = row, expected_prev, row.hash
        else:
            report.problems.append(_classify(row, nxt if isinstance(nxt, Row) else None, good, before_good,
                                             expected_prev, gap, last_head_id, conn))
        row = nxt
    if row:
        report.problems.append(Problem("insertion", None, f"{row} check rows belong to no verdict"))
    if good is not None:
        report.head_id, report.head_hash = good.id, good.hash
    if not report.problems:
        _heads(conn, report)
    _reports(conn, report)
    return report
