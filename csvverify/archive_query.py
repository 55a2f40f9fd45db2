"""Read-side queries of the archive: status, filtered verdict lists, one verdict in full."""

import json
import os
from dataclasses import dataclass

from csvverify import migrations
from csvverify.archive import VERDICT_FIELDS

LIST_FIELDS = ("id", "appraised_at", "outcome", "exit_class", "chip_id", "failed_checks", "path", "report_sha256")


@dataclass(frozen=True)
class Filters:
    chip: str | None = None
    outcome: str | None = None
    check: str | None = None  # verdicts in which this check failed
    since: str | None = None  # a timestamp (archive.parse_since)
    run: int | None = None

    def where(self) -> tuple[str, list]:
        """The SQL WHERE clause (on verdicts aliased ``v``) and its arguments."""
        conditions = [("v.chip_id = ?", self.chip), ("v.outcome = ?", self.outcome),
                      ("v.id IN (SELECT verdict_id FROM checks WHERE check_id = ? AND status = 'fail')", self.check),
                      ("v.appraised_at >= ?", self.since), ("v.run_id = ?", self.run)]
        given = [(sql, value) for sql, value in conditions if value is not None]
        if not given:
            return "", []
        return " WHERE " + " AND ".join(sql for sql, _ in given), [value for _, value in given]


def list_verdicts(conn, filters: Filters = Filters(), limit: int | None = 20, newest_first: bool = True):
    """Verdict summaries, newest first; ``limit`` None or 0 for all."""
    where, args = filters.where()
    sql = (f"SELECT {', '.join('v.' + f for f in LIST_FIELDS)} FROM verdicts v{where} "
           f"ORDER BY v.id {'DESC' if newest_first else 'ASC'}")
    if limit:
        sql += " LIMIT ?"
        args.append(limit)
    cur = conn.execute(sql, args)
    for row in cur:
        item = dict(zip(LIST_FIELDS, row))
        item["failed_checks"] = item["failed_checks"].split()
        yield item


def checks_of(conn, verdict_id: int) -> list[dict]:
    return [{"id": cid, "status": status, "reason": reason} for cid, status, reason in conn.execute(
        "SELECT c.check_id, c.status, r.text FROM checks c LEFT JOIN reasons r ON r.id = c.reason_id "
        "WHERE c.verdict_id = ? ORDER BY c.position", (verdict_id,))]


def verdict_record(conn, row: tuple, with_checks: bool = True) -> dict:
    """A verdict row (``id``, VERDICT_FIELDS, report_fields_sha256, prev_hash, hash) as a JSON-ready dict."""
    names = ("id",) + VERDICT_FIELDS + ("report_fields_sha256", "prev_hash", "hash")
    item = dict(zip(names, row))
    item["failed_checks"] = item["failed_checks"].split()
    item["chain"] = bool(item["chain"])
    for key in ("trust_roots", "findings", "collateral"):
        if item[key] is not None:
            item[key] = json.loads(item[key])
    if with_checks:
        item["checks"] = checks_of(conn, item["id"])
    return item


def verdict_rows(conn, filters: Filters = Filters(), limit: int | None = None):
    """Full verdict rows in id order, for exports."""
    where, args = filters.where()
    sql = f"SELECT v.id, {', '.join('v.' + f for f in VERDICT_FIELDS)}, v.report_fields_sha256, v.prev_hash, v.hash " \
          f"FROM verdicts v{where} ORDER BY v.id"
    if limit:
        sql += f" LIMIT {int(limit)}"
    return conn.execute(sql, args)


REPORT_COLUMNS = ("sha256", "size", "version", "container", "chip_id", "vm_id", "measure", "user_data", "mnonce",
                  "policy", "sealing_key", "withheld", "first_seen")


def show(conn, verdict_id: int) -> dict | None:
    row = conn.execute(f"SELECT id, {', '.join(VERDICT_FIELDS)}, report_fields_sha256, prev_hash, hash FROM verdicts "
                       "WHERE id = ?", (verdict_id,)).fetchone()
    if row is None:
        return None
    item = verdict_record(conn, row)
    item["report"] = None
    if item["report_sha256"]:
        rep = conn.execute(f"SELECT {', '.join(REPORT_COLUMNS)}, bytes IS NOT NULL FROM reports WHERE sha256 = ?",
                           (item["report_sha256"],)).fetchone()
        if rep is not None:
            item["report"] = dict(zip(REPORT_COLUMNS, rep[:-1])) | {"bytes_stored": bool(rep[-1])}
            item["report"]["paths"] = [{"path": p, "first_seen": t} for p, t in conn.execute(
                "SELECT path, first_seen FROM report_paths WHERE report_sha256 = ? ORDER BY first_seen, path",
                (item["report_sha256"],))]
    settings = conn.execute("SELECT description FROM settings WHERE sha256 = ?", (item["settings_sha256"],)).fetchone()
    item["settings"] = json.loads(settings[0]) if settings else None
    later = conn.execute("SELECT id, outcome FROM verdicts WHERE reappraises = ? ORDER BY id", (verdict_id,)).fetchall()
    item["reappraised_by"] = [{"id": i, "outcome": o} for i, o in later]
    return item


def status(archive) -> dict:
    conn = archive.conn

    def one(sql):
        return conn.execute(sql).fetchone()[0]

    size = sum(os.path.getsize(p) for p in (archive.path, f"{archive.path}-wal") if os.path.exists(p))
    head = conn.execute("SELECT id, hash, appraised_at FROM verdicts ORDER BY id DESC LIMIT 1").fetchone()
    return {
        "schema": "csvverify/archive-status/v1",
        "path": str(archive.path),
        "size_bytes": size,
        "migrations": migrations.applied(archive.conn),
        "verdicts": one("SELECT COUNT(*) FROM verdicts"),
        "outcomes": dict(conn.execute("SELECT outcome, COUNT(*) FROM verdicts GROUP BY outcome ORDER BY outcome")),
        "reports": one("SELECT COUNT(*) FROM reports"),
        "reports_without_bytes": one("SELECT COUNT(*) FROM reports WHERE bytes IS NULL"),
        "report_paths": one("SELECT COUNT(*) FROM report_paths"),
        "chips": one("SELECT COUNT(DISTINCT chip_id) FROM reports"),
        "runs": one("SELECT COUNT(*) FROM runs"),
        "unfinished_runs": one("SELECT COUNT(*) FROM runs WHERE finished_at IS NULL"),
        "first_verdict_at": one("SELECT MIN(appraised_at) FROM verdicts"),
        "last_verdict_at": head[2] if head else None,
        "head": {"verdict_id": head[0], "hash": head[1]} if head else None,
    }
