"""The archive schema, created and upgraded by numbered migrations (``m001_…``, applied in order).

Each migration runs in one ``BEGIN IMMEDIATE`` transaction together with the row that records it in
``_csvverify_migrations``, so a process killed mid-migration leaves the schema as it was, and two
processes opening a fresh archive at once apply each migration exactly once. docs/archive.md describes
every table; tests/test_archive.py checks the columns.
"""

from datetime import datetime, timezone

MIGRATIONS_TABLE = "_csvverify_migrations"
MIGRATIONS = []
migration = MIGRATIONS.append


def applied(conn) -> list[str]:
    """Names of the migrations recorded in the archive (``conn``: an sqlite3 connection)."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (MIGRATIONS_TABLE,)).fetchone() is None:
        return []
    return [row[0] for row in conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY name")]


def pending(conn) -> list[str]:
    done = set(applied(conn))
    return [fn.__name__ for fn in MIGRATIONS if fn.__name__ not in done]


def unknown(conn) -> list[str]:
    """Migrations recorded in the file that this version does not know (the archive is newer than the tool)."""
    known = {fn.__name__ for fn in MIGRATIONS}
    return [name for name in applied(conn) if name not in known]


def migrate(db) -> list[str]:
    """Apply every pending migration (``db``: a sqlite_utils.Database); returns the names applied now."""
    done_now = []
    for fn in MIGRATIONS:
        if fn.__name__ in set(applied(db.conn)):
            continue
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            db.execute(f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (name TEXT PRIMARY KEY, applied_at TEXT)")
            # Another process may have applied it while this one waited for the write lock.
            if db.execute(f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE name = ?", [fn.__name__]).fetchone() is None:
                fn(db)
                db[MIGRATIONS_TABLE].insert({"name": fn.__name__,
                                             "applied_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
                done_now.append(fn.__name__)
            db.conn.execute("COMMIT")
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise
    return done_now


@migration
def m001_initial(db):
    db["runs"].create({
        "id": int, "command": str, "started_at": str, "finished_at": str, "tool_version": str,
        "settings_sha256": str, "arguments": str, "inputs": int, "new_verdicts": int, "already_archived": int,
    }, pk="id", not_null=["command", "started_at", "tool_version"])

    db["settings"].create({"sha256": str, "description": str, "first_used": str}, pk="sha256",
                          not_null=["description"])

    db["reports"].create({
        "sha256": str, "size": int, "bytes": bytes, "version": int, "container": str, "chip_id": str,
        "vm_id": str, "measure": str, "user_data": str, "mnonce": str, "policy": int, "sealing_key": str,
        "first_seen": str,
    }, pk="sha256", not_null=["first_seen"])
    for column in ("chip_id", "mnonce", "user_data"):
        db["reports"].create_index([column], index_name=f"reports_{column}")

    db["report_paths"].create({"report_sha256": str, "path": str, "first_seen": str, "run_id": int},
                              pk=("report_sha256", "path"), not_null=["first_seen"],
                              foreign_keys=[("report_sha256", "reports", "sha256"), ("run_id", "runs", "id")])

    db["verdicts"].create({
        "id": int, "run_id": int, "appraised_at": str, "path": str, "report_sha256": str, "chip_id": str,
        "outcome": str, "exit_class": int, "failed_checks": str, "tool_version": str, "settings_sha256": str,
        "policy_sha256": str, "chain": int, "trust_roots": str, "collateral": str, "findings": str, "hint": str,
        "reappraises": int, "prev_hash": str, "hash": str,
    }, pk="id", not_null=["appraised_at", "path", "outcome", "exit_class", "failed_checks", "tool_version",
                          "settings_sha256", "chain", "trust_roots", "findings", "prev_hash", "hash"],
       foreign_keys=[("run_id", "runs", "id"), ("report_sha256", "reports", "sha256"),
                     ("settings_sha256", "settings", "sha256"), ("reappraises", "verdicts", "id")])
    db.execute("CREATE INDEX verdicts_chip ON verdicts(chip_id, id)")
    db.execute("CREATE INDEX verdicts_report ON verdicts(report_sha256, settings_sha256, tool_version)")
    # Unreadable inputs have no sha256; they are found again by path.
    db.execute("CREATE INDEX verdicts_unreadable ON verdicts(path, settings_sha256) WHERE report_sha256 IS NULL")
    db.execute("CREATE INDEX verdicts_outcome ON verdicts(outcome, id)")

    db["reasons"].create({"id": int, "text": str}, pk="id", not_null=["text"])
    db.execute("CREATE UNIQUE INDEX reasons_text ON reasons(text)")

    # One row per check; WITHOUT ROWID keeps the 18 rows of a verdict together on disk.
    db.execute("""CREATE TABLE checks (
        verdict_id INTEGER NOT NULL REFERENCES verdicts(id),
        position INTEGER NOT NULL,
        check_id TEXT NOT NULL,
        status TEXT NOT NULL,
        reason_id INTEGER NOT NULL REFERENCES reasons(id),
        PRIMARY KEY (verdict_id, position)
    ) WITHOUT ROWID""")
    db.execute("CREATE INDEX checks_failed ON checks(check_id, verdict_id) WHERE status = 'fail'")

    # The chain head after every committed batch (append-only), so a truncated tail is noticed.
    db["chain_heads"].create({"id": int, "verdict_id": int, "hash": str, "recorded_at": str}, pk="id",
                             not_null=["verdict_id", "hash", "recorded_at"])

    db.execute("""CREATE VIEW check_results AS
        SELECT v.id AS verdict_id, v.appraised_at, v.chip_id, v.path, v.outcome, c.check_id, c.status,
               r.text AS reason
        FROM checks c JOIN verdicts v ON v.id = c.verdict_id JOIN reasons r ON r.id = c.reason_id""")


@migration
def m002_report_coverage(db):
    # Each verdict covers the hash of its report row's decoded fields (see archive.report_fields_sha256);
    # NULL in verdicts written before this migration, which db check treats as uncovered.
    db.execute("ALTER TABLE verdicts ADD COLUMN report_fields_sha256 TEXT")
    # Why a report's bytes were not stored: sealing-key, not-a-report, stdin or unavailable (NULL: stored).
    db.execute("ALTER TABLE reports ADD COLUMN withheld TEXT")
    # Older archives kept the bytes of inputs that did not decode, which may hold a sealing key: drop them
    # (no verdict hash covers them; their sha256 and size stay).
    db.execute("UPDATE reports SET bytes = NULL, withheld = 'not-a-report' WHERE version IS NULL AND bytes IS NOT NULL")


@migration
def m003_verdicts_chip_outcome(db):
    db.execute("CREATE INDEX verdicts_chip_outcome ON verdicts(chip_id, outcome, id)")


@migration
def m004_reports_chip_vm(db):
    # Replay counts group a chip's reports by VM id after every audit: with vm_id in the index they no longer
    # read each report row (3 KB, its bytes included), which took seconds on an archive of a million reports.
    db.execute("CREATE INDEX reports_chip_vm ON reports(chip_id, vm_id)")
    db.execute("DROP INDEX reports_chip_id")  # its column leads the new index
