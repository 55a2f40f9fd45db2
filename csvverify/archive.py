"""The verdict archive: a SQLite file (built with sqlite-utils) holding reports, verdicts and their checks.

Default place ``$CSVVERIFY_HOME/archive.db``. WAL mode with a busy timeout; every write is one
``BEGIN IMMEDIATE`` transaction, so several processes may write at once and a killed process leaves no
partial rows. Verdict rows are never updated: each one carries ``prev_hash`` and ``hash`` =
SHA-256(prev_hash ‖ SHA-256 of its content and checks ‖ SHA-256 of its report row's fields), a chain that
``csvverify.chaincheck`` verifies.
Schema: ``csvverify.migrations`` and docs/archive.md.
"""

import hashlib
import json
import os
import sqlite3
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple

from csvverify import __version__
from csvverify.errors import CsvVerifyError, UsageError
from csvverify.home import home_dir

GENESIS = "0" * 64
STDIN = "<stdin>"  # the path recorded for a report read from standard input (not a place it was seen at)
BUSY_TIMEOUT_MS = 120_000
EXIT_ARCHIVE = 7  # the archive cannot be opened, is not an archive, or is newer than this tool
REASON_CACHE_LIMIT = 50_000
CHECK_TEMPLATES_LIMIT = 4096
CACHE_KIB = 8_192  # SQLite page cache of the writer (a large archive's indexes outgrow any cache; the OS has the file)
READ_CACHE_KIB = 2_048  # ... and of a read-only connection (a worker's lookups are scattered)
# Page size of a new archive (an existing one keeps its own). A report row (~3 KB with its bytes) leaves a
# quarter of a 4 KB page unused; 16 KB pages hold five, and a batch is stored about a quarter faster.
PAGE_SIZE = 16_384

VERDICT_FIELDS = ("run_id", "appraised_at", "path", "report_sha256", "chip_id", "outcome", "exit_class",
                  "failed_checks", "tool_version", "settings_sha256", "policy_sha256", "chain", "trust_roots",
                  "collateral", "findings", "hint", "reappraises")
REPORT_FIELDS = ("sha256", "size", "bytes", "version", "container", "chip_id", "vm_id", "measure", "user_data",
                 "mnonce", "policy", "sealing_key", "withheld")
# The report columns a verdict's hash covers (report_fields_sha256): all but size, bytes and first_seen. The
# bytes are checked against sha256 instead; size and bytes may be filled in later (see Archive.store).
COVERED_REPORT_FIELDS = ("sha256", "version", "container", "chip_id", "vm_id", "measure", "user_data", "mnonce",
                         "policy", "sealing_key", "withheld")
_COVERED_INDEXES = tuple(REPORT_FIELDS.index(name) for name in COVERED_REPORT_FIELDS)
# Why a report's bytes are not stored (reports.withheld); the first two are never filled in later.
WITHHELD_SECRET, WITHHELD_NOT_A_REPORT, WITHHELD_STDIN, WITHHELD_UNAVAILABLE = (
    "sealing-key", "not-a-report", "stdin", "unavailable")


class ArchiveError(CsvVerifyError):
    """The archive cannot be used (exit class 7)."""

    exit_code = EXIT_ARCHIVE


def default_path() -> Path:
    return home_dir() / "archive.db"


def timestamp(when: datetime | None = None) -> str:
    """UTC, millisecond precision, fixed width: sorts as text (``2026-11-28T14:03:54.123Z``)."""
    if when is None:
        return _now()
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


_SECOND = [None, ""]  # the last whole second formatted by _now, and its text


def _now() -> str:
    """``timestamp()`` of the current time; the text of the second is formatted once per second (every verdict
    of a batch is stamped)."""
    seconds, ns = divmod(time.time_ns(), 1_000_000_000)
    if seconds != _SECOND[0]:
        _SECOND[:] = [seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))]
    return f"{_SECOND[1]}.{ns // 1_000_000:03d}Z"


def parse_since(text: str, now: datetime | None = None) -> str:
    """``--since``: an ISO date or date-time (UTC unless it says otherwise), or ``7d`` / ``12h`` / ``30m`` ago."""
    hint = "use 2026-11-01, 2026-11-01T08:00, 7d, 12h or 30m (leave --since out for every verdict)"
    value = text.strip()
    if not value:
        raise UsageError("--since '': empty; give a date, a date-time or an age", hint=hint)
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if value[:-1].isdigit() and value[-1:] in units:
        try:
            return timestamp((now or datetime.now(timezone.utc)) - timedelta(**{units[value[-1]]: int(value[:-1])}))
        except OverflowError:
            raise UsageError(f"--since {text!r}: reaches back before the year 1", hint=hint) from None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since {text!r}: not a date, date-time or age", hint=hint) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    try:
        return timestamp(when)
    except OverflowError:  # a time zone offset that moves the time out of the years 1..9999 in UTC
        raise UsageError(f"--since {text!r}: outside the years 1 to 9999 in UTC", hint=hint) from None


def display_path(path) -> str:
    """A path as stored: text, with undecodable bytes of the file name shown as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # made once: json.dumps makes one per call


def _compact(value) -> str:
    return _COMPACT.encode(value)


def content_sha256(verdict_values, checks) -> str:
    """What a verdict's hash covers: every column but id/prev_hash/hash, and its checks in order: the
    SHA-256 of the compact JSON ``[[column values...], [[position, check_id, status, reason], ...]]``."""
    return hashlib.sha256(_compact([verdict_values, checks]).encode()).hexdigest()


class _Memo(dict):
    """A bounded memo (cleared whole when full) for what recurs in almost every verdict of a batch."""

    def __init__(self, limit: int = REASON_CACHE_LIMIT):
        super().__init__()
        self.limit = limit

    def get_or(self, key, make):
        value = self.get(key)
        if value is None:
            if len(self) >= self.limit:
                self.clear()
            value = self[key] = make(key)
        return value


_FINDING_JSON = _Memo()
_COLLATERAL_JSON = _Memo()


class _CheckRows(NamedTuple):
    """What a verdict's list of checks turns into, worked out once per distinct list (see _check_rows)."""

    checks: tuple  # the Check objects themselves: held, so their ids stay theirs while the entry lives
    rows: tuple  # ((position, check_id, status, reason), ...)
    encoded: str  # the rows' compact JSON items joined by "," (a JSON array is that inside brackets)
    outcome: str
    exit_class: int
    failed_checks: str


CHECK_ROWS_LIMIT = 1024
_CHECK_ROWS = _Memo(CHECK_ROWS_LIMIT)


def _check_rows(verdict) -> _CheckRows:
    """The rows, encoding and outcome of a verdict's checks. Verdicts of a batch mostly consist of the very same
    Check objects (see verdict._once), so the entry is found by their ids; an entry keeps its Check objects
    alive, so an id in a key cannot have been reused by another object while the entry exists."""
    def make(_):
        checks = tuple(verdict.checks)
        rows = tuple([(i, c.id, c.status.value, c.reason) for i, c in enumerate(checks)])
        return _CheckRows(checks, rows, ",".join([_compact(row) for row in rows]), verdict.outcome,
                          int(verdict.exit_class), " ".join(c.id for c in verdict.failed))

    return _CHECK_ROWS.get_or(tuple(map(id, verdict.checks)), make)


_FINDINGS_JSON = _Memo(CHECK_ROWS_LIMIT)


def _findings_json(findings: list) -> str:
    """The findings' compact JSON list, one string object per list of findings (so a pickled batch of rows, and the
    writer's memory, carry it once). Verdicts of a batch share their Finding objects (see
    verdict._once): found by their ids, the entry holding the objects so that no id can be reused meanwhile."""
    def make(_):
        return tuple(findings), "[" + ",".join([_FINDING_JSON.get_or(f, lambda f: _compact(f.to_dict()))
                                                 for f in findings]) + "]"

    return _FINDINGS_JSON.get_or(tuple(map(id, findings)), make)[1]


def _collateral_json(collateral: dict) -> str:
    return _COLLATERAL_JSON.get_or(tuple(sorted(collateral.items())), lambda _: json.dumps(collateral, sort_keys=True))


def link_hash(prev_hash: str, content: str) -> str:
    return hashlib.sha256(f"{prev_hash}:{content}".encode()).hexdigest()


def report_fields_sha256(values) -> str:
    """The SHA-256 of a report row's COVERED_REPORT_FIELDS values (compact JSON list)."""
    return hashlib.sha256(_compact(list(values)).encode()).hexdigest()


def _row_fields_sha256(report_row: tuple) -> str:
    """report_fields_sha256 of a row in REPORT_FIELDS order, as it will read back from the reports table (its
    values are text, integers and NULL, which SQLite returns unchanged)."""
    return report_fields_sha256([report_row[i] for i in _COVERED_INDEXES])


def linked_content(content: str, fields_sha256: str | None) -> str:
    """What a verdict's link hashes after prev_hash: its content, and its report row's field hash if it has one."""
    return content if fields_sha256 is None else f"{content}:{fields_sha256}"


class Appraisal(NamedTuple):
    """A new verdict ready to store: rows in ``VERDICT_FIELDS`` / ``REPORT_FIELDS`` order."""

    path: str
    sha256: str | None
    report: tuple | None  # None when the input could not be read
    verdict: tuple
    checks: tuple  # ((position, check_id, status, reason), ...)
    content: str  # content_sha256(verdict, checks)

    @property
    def outcome(self) -> str:
        return self.verdict[5]

    @property
    def exit_class(self) -> int:
        return self.verdict[6]

    @property
    def failed_checks(self) -> str:
        return self.verdict[7]


class Archived(NamedTuple):
    """An input whose verdict under the same settings and tool version is already stored."""

    path: str
    sha256: str | None
    verdict_id: int
    outcome: str
    exit_class: int
    failed_checks: str


class Context(NamedTuple):
    """What every verdict of one run shares."""

    run_id: int | None
    settings_sha256: str
    policy_sha256: str | None
    chain: bool
    trust_roots: str  # JSON list of root fingerprints


def appraisal(verdict, ctx: Context, path: str, data: bytes | None, reappraises: int | None = None) -> Appraisal:
    """Rows for one verdict. Bytes are stored only for inputs that decoded into a report without the VM's
    sealing key: the archive never keeps that secret, and an input that did not decode may hold it anywhere.
    Inputs whose bytes are not at hand (standard input, a file changed since) are stored without them too."""
    fields = verdict.report
    report_row = None
    if verdict.sha256 is not None:
        size = len(data) if data is not None else None
        if not fields:
            withheld = WITHHELD_NOT_A_REPORT
        elif fields.get("sealing_key") == "present":
            withheld = WITHHELD_SECRET
        elif data is None:
            withheld = WITHHELD_STDIN if path == STDIN else WITHHELD_UNAVAILABLE
        else:
            withheld = None
        blob = data if withheld is None else None
        if fields:
            report_row = (verdict.sha256, size, blob, fields["version"], fields.get("container"), fields["chip_id"],
                          fields["vm_id"], fields["measure"], fields["user_data"], fields["mnonce"], fields["policy"],
                          fields["sealing_key"], withheld)
        else:
            report_row = (verdict.sha256, size, None) + (None,) * 9 + (withheld,)
    trust = verdict.trust or {}
    checked = _check_rows(verdict)
    findings = _findings_json(verdict.findings)
    values = (ctx.run_id, timestamp(), path, verdict.sha256, fields["chip_id"] if fields else None,
              checked.outcome, checked.exit_class, checked.failed_checks,
              __version__, ctx.settings_sha256, ctx.policy_sha256, int(ctx.chain), ctx.trust_roots,
              _collateral_json(trust["collateral"]) if trust.get("collateral") else None,
              findings, verdict.hint, reappraises)
    checks = checked.rows
    try:  # content_sha256(values, checks), with the checks' part encoded once (see _check_rows)
        content = hashlib.sha256(f"[{_compact(values)},[{checked.encoded}]]".encode()).hexdigest()
    except UnicodeEncodeError:  # a file name that is not UTF-8 (e.g. of a --certs directory) in a reason
        values = tuple(_text(v) for v in values)
        checks = tuple(tuple(_text(v) for v in check) for check in checks)
        content = content_sha256(values, checks)
    return Appraisal(path, verdict.sha256, report_row, values, checks, content)


def _text(value):
    """Text that SQLite and UTF-8 JSON can hold: undecodable file-name bytes (surrogates) become \\xNN."""
    if not isinstance(value, str):
        return value
    try:
        value.encode()
        return value
    except UnicodeEncodeError:
        try:
            raw = value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raw = value.encode("utf-8", "surrogatepass")
        return raw.decode("utf-8", "backslashreplace")


def find_existing(conn, sha: str | None, path: str, settings_sha256: str, run_id: int | None = None) -> Archived | None:
    """The latest verdict for these bytes (or, for an unreadable input, this path) under these settings and
    this tool version; only among the verdicts of ``run_id`` when it is given."""
    sql = ("SELECT id, outcome, exit_class, failed_checks FROM verdicts WHERE "
           + ("report_sha256 = ?" if sha is not None else "path = ? AND report_sha256 IS NULL")
           + " AND settings_sha256 = ? AND tool_version = ?")
    args = [sha if sha is not None else path, settings_sha256, __version__]
    if run_id is not None:
        sql += " AND run_id = ?"
        args.append(run_id)
    row = conn.execute(sql + " ORDER BY id DESC LIMIT 1", args).fetchone()
    return Archived(path, sha, *row) if row else None


MAX_PARAMETERS = 999  # the smallest limit an SQLite build may have
# Batch inserts run inside one write transaction that any failure rolls back whole (Archive._write). Saying so
# ("OR ROLLBACK") spares SQLite a statement journal per multi-row insert, which it would otherwise write to a
# temporary file in case one statement had to be undone alone: about half the writes of a batch.
_INSERT = "INSERT OR ROLLBACK INTO"


def _insert_rows(conn, table: str, columns: tuple, rows: list, conflict: str = "") -> None:
    insert_values(conn, table, columns, [v for row in rows for v in row], conflict)


def insert_values(conn, table: str, columns: tuple, values: list, conflict: str = "") -> None:
    """Multi-row INSERTs of rows given as one flat list of values, row after row (about twice as fast as
    executemany for the many small check rows); ``conflict``: an ON CONFLICT clause."""
    width = len(columns)
    per = max(1, MAX_PARAMETERS // width)
    head = f"{_INSERT} {table} ({', '.join(columns)}) VALUES "
    one = f"({', '.join('?' * width)})"
    step = per * width
    for start in range(0, len(values), step):
        part = values[start:start + step]
        conn.execute(f"{head}{', '.join([one] * (len(part) // width))} {conflict}", part)


def find_existing_many(conn, shas, settings_sha256: str, run_id: int | None = None) -> dict:
    """sha256 -> (id, outcome, exit_class, failed_checks) of its latest verdict under these settings and this
    tool version (only ``run_id``'s when given), for many inputs in few queries."""
    found = {}
    unique = list(dict.fromkeys(shas))
    extra = " AND run_id = ?" if run_id is not None else ""
    for start in range(0, len(unique), 500):
        part = unique[start:start + 500]
        sql = (f"SELECT report_sha256, id, outcome, exit_class, failed_checks FROM verdicts WHERE report_sha256 IN "
               f"({', '.join('?' * len(part))}) AND settings_sha256 = ? AND tool_version = ?{extra} ORDER BY id")
        args = part + [settings_sha256, __version__] + ([run_id] if run_id is not None else [])
        for sha, *verdict in conn.execute(sql, args):
            found[sha] = tuple(verdict)  # ascending ids: the latest verdict is kept
    return found


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode: transactions are only the explicit BEGIN IMMEDIATE ones."""
    if readonly:
        from urllib.parse import quote

        conn = sqlite3.connect(f"file:{quote(os.fspath(path))}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                               isolation_level=None)
    else:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _size_cache(conn, READ_CACHE_KIB if readonly else CACHE_KIB)
    return conn


def _size_cache(conn: sqlite3.Connection, kib: int = CACHE_KIB) -> None:
    """A page cache of ``kib``, in pages of this file's size. (SQLite turns a size in KiB into pages with the
    page size it knows when told: a new file's 4096 would make a 16 KB-page cache four times too large.)"""
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute(f"PRAGMA cache_size = {max(1, kib * 1024 // page_size)}")


def _use_wal(conn: sqlite3.Connection) -> None:
    """Put the archive in WAL mode (once per file; later opens find it so). SQLite answers a journal-mode change
    that meets another connection with "database is locked" at once, without its busy timeout: two processes
    creating one archive together meet here, so the change is retried until the busy timeout has passed."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or time.monotonic() > deadline:
                raise
        time.sleep(0.005)


class Archive:
    def __init__(self, path: Path | None = None, create: bool = True):
        from csvverify import migrations

        self.path = Path(path) if path is not None else default_path()
        if not create and not self.path.exists():
            raise ArchiveError(f"{self.path}: no archive here yet",
                               hint="`csvverify audit DIR` or `csvverify verify FILE --archive` creates it")
        if self.path.is_dir():
            raise ArchiveError(f"{self.path}: is a directory", hint="--db takes the archive's file name")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = connect(self.path)
            self.conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # takes effect only in a new, still empty file
            _use_wal(self.conn)
            _size_cache(self.conn)  # the page size is now fixed
            self.conn.execute("PRAGMA synchronous = NORMAL")
            tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and migrations.MIGRATIONS_TABLE not in tables:
                raise ArchiveError(f"{self.path}: an SQLite file that is not a csvverify archive "
                                   f"(tables: {', '.join(sorted(tables)[:5])})", hint="choose another --db path")
            if tables - {migrations.MIGRATIONS_TABLE} and not migrations.applied(self.conn):
                raise ArchiveError(f"{self.path}: not a usable csvverify archive: it has tables but its migration "
                                   f"record ({migrations.MIGRATIONS_TABLE}) is empty, so its schema is unknown",
                                   hint="restore the archive from a backup (csvverify db backup), or choose another "
                                        "--db path")
            newer = migrations.unknown(self.conn)
            if newer:
                raise ArchiveError(f"{self.path}: written by a newer csvverify (migrations {', '.join(newer)})",
                                   hint="upgrade csvverify to use this archive")
            if migrations.pending(self.conn):
                migrations.migrate(self.db)
        except sqlite3.DatabaseError as exc:
            raise ArchiveError(f"{self.path}: cannot be used as an archive: {exc}",
                               hint="check the path, the free space and the file's permissions") from None
        self._reasons: dict[str, int] = {}
        self._check_templates = _Memo(CHECK_TEMPLATES_LIMIT)  # see _check_values

    @property
    def db(self):
        """The sqlite-utils view of the connection (imported only when needed: migrations, introspection)."""
        if getattr(self, "_db", None) is None:
            import sqlite_utils

            self._db = sqlite_utils.Database(self.conn)
        return self._db

    def close(self) -> None:
        self.conn.close()

    # -- runs ---------------------------------------------------------------------------------------

    def start_run(self, command: str, settings_sha256: str, settings_description: dict, arguments: dict) -> int:
        with self._write():
            self.conn.execute("INSERT OR IGNORE INTO settings (sha256, description, first_used) VALUES (?, ?, ?)",
                              (settings_sha256, json.dumps(settings_description, sort_keys=True), timestamp()))
            cur = self.conn.execute(
                "INSERT INTO runs (command, started_at, tool_version, settings_sha256, arguments) VALUES (?,?,?,?,?)",
                (command, timestamp(), __version__, settings_sha256, json.dumps(arguments, sort_keys=True)))
            return cur.lastrowid

    def finish_run(self, run_id: int, inputs: int, new_verdicts: int, already_archived: int) -> None:
        """The only update the archive makes: a run's closing counts (runs are not part of the chain)."""
        with self._write():
            self.conn.execute("UPDATE runs SET finished_at = ?, inputs = ?, new_verdicts = ?, already_archived = ? "
                              "WHERE id = ?", (timestamp(), inputs, new_verdicts, already_archived, run_id))

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the archive file and empty it, unless another connection is busy with the
        archive right now (this never waits: the log is then folded in later, as usual). After a batch this
        keeps the archive's size on disk from changing whenever some idle connection happens to close."""
        try:
            self.conn.execute("PRAGMA busy_timeout = 0")
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.DatabaseError:
            pass  # busy or read-only: nothing is lost, the log stays valid
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    # -- writing ------------------------------------------------------------------------------------

    @contextmanager
    def _write(self):
        """One BEGIN IMMEDIATE transaction: waits for other writers (busy timeout), all or nothing."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise ArchiveError(f"{self.path}: cannot start a write: {exc}",
                               hint="another process held the archive longer than the busy timeout; retry") from None
        try:
            yield
        except BaseException as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self._forget_reason_ids()
            if isinstance(exc, sqlite3.DatabaseError):
                raise ArchiveError(f"{self.path}: write failed: {exc}",
                                   hint="check the free space and the file's permissions") from None
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self._forget_reason_ids()
            raise ArchiveError(f"{self.path}: commit failed: {exc}", hint="check the free space") from None

    def existing(self, sha: str | None, path: str, settings_sha256: str, run_id: int | None = None) -> Archived | None:
        return find_existing(self.conn, sha, path, settings_sha256, run_id)

    def _reason_id(self, text: str) -> int:
        rid = self._reasons.get(text)
        if rid is None:
            self.conn.execute("INSERT OR IGNORE INTO reasons (text) VALUES (?)", (text,))
            rid = self.conn.execute("SELECT id FROM reasons WHERE text = ?", (text,)).fetchone()[0]
            if len(self._reasons) >= REASON_CACHE_LIMIT:
                self._reasons.clear()
            self._reasons[text] = rid
        return rid

    def store(self, items, settings_sha256: str, run_id: int | None, force: bool = False) -> list:
        """Store a batch in one transaction. Returns, per item, the new verdict id or the ``Archived``
        verdict that made it unnecessary (unless ``force``)."""
        results, new = [], []
        with self._write():
            head = self.conn.execute("SELECT id, hash FROM verdicts ORDER BY id DESC LIMIT 1").fetchone()
            last_id, prev = head if head else (0, GENESIS)
            path_rows, report_rows = [], []
            scope = run_id if force else None
            # Checked again here, inside the write lock: another process may have stored the same bytes.
            known = find_existing_many(self.conn, [i.sha256 for i in items if isinstance(i, Appraisal) and i.sha256],
                                       settings_sha256, scope)
            # The report rows already stored keep their fields (an insert only fills in missing bytes); the others
            # get the fields of their first row in this batch.
            covered = report_fields_of(self.conn, [i.sha256 for i in items if isinstance(i, Appraisal) and i.report])
            first: dict = {}
            batch: dict = {}
            now = timestamp()
            for item in items:
                key = (item.sha256, None if item.sha256 else item.path)
                if isinstance(item, Archived):
                    found = item
                else:
                    found = batch.get(key)
                    if found is None and item.sha256 in known:
                        found = Archived(item.path, item.sha256, *known[item.sha256])
                    elif found is None and item.sha256 is None:
                        found = self.existing(None, item.path, settings_sha256, scope)
                    if item.report is not None:
                        report_rows.append(item.report + (now,))
                        first.setdefault(item.sha256, item)
                if item.sha256 is not None and item.path != STDIN:
                    path_rows.append((item.sha256, item.path, now, run_id))
                if found is not None:
                    results.append(found._replace(path=item.path))
                    continue
                last_id += 1
                new.append((last_id, item))
                batch[key] = Archived(item.path, item.sha256, last_id, item.outcome, item.exit_class,
                                      item.failed_checks)
                results.append(last_id)
            # A report first seen without its bytes at hand (standard input, a file that changed) gets them when
            # an input brings them; the first row's fields stay (a verdict's hash covers them).
            _insert_rows(self.conn, "reports", REPORT_FIELDS + ("first_seen",), report_rows,
                         "ON CONFLICT (sha256) DO UPDATE SET bytes = excluded.bytes, size = excluded.size "
                         "WHERE reports.bytes IS NULL AND excluded.bytes IS NOT NULL AND (reports.withheld IS NULL "
                         f"OR reports.withheld IN ('{WITHHELD_STDIN}', '{WITHHELD_UNAVAILABLE}'))")
            _insert_rows(self.conn, "report_paths", ("report_sha256", "path", "first_seen", "run_id"), path_rows,
                         "ON CONFLICT DO NOTHING")
            if new:
                for sha, item in first.items():
                    if sha not in covered:
                        covered[sha] = _row_fields_sha256(item.report)
                self._append(new, prev, now, covered)
        return results

    def _append(self, new: list, prev: str, now: str, covered: dict) -> None:
        """Verdict and check rows for (id, Appraisal) pairs, each linked to the one before and covering the
        fields of its report row as stored (``covered``: sha256 -> report_fields_sha256 of that row)."""
        verdict_rows, check_values = [], []
        for verdict_id, item in new:
            fields_sha = covered.get(item.sha256)
            digest = link_hash(prev, linked_content(item.content, fields_sha))
            verdict_rows.append((verdict_id,) + item.verdict + (fields_sha, prev, digest))
            prev = digest
            check_values += self._check_values(item.checks, verdict_id)
        _insert_rows(self.conn, "verdicts", ("id",) + VERDICT_FIELDS + ("report_fields_sha256", "prev_hash", "hash"),
                     verdict_rows)
        insert_values(self.conn, "checks", ("verdict_id", "position", "check_id", "status", "reason_id"), check_values)
        self.conn.execute("INSERT INTO chain_heads (verdict_id, hash, recorded_at) VALUES (?, ?, ?)",
                          (new[-1][0], prev, now))

    def _check_values(self, checks: tuple, verdict_id: int) -> list:
        """The checks table's values for one verdict's check rows, flat. Verdicts of a batch mostly share their
        checks, so the values (reason ids included) are kept per list of checks and only the verdict id is set."""
        def make(_):
            template = []
            for pos, cid, status, reason in checks:
                template += (None, pos, cid, status, self._reason_id(reason))
            return template

        values = self._check_templates.get_or(checks, make).copy()
        values[0::5] = [verdict_id] * len(checks)
        return values

    def _forget_reason_ids(self) -> None:
        """Reason ids handed out in a rolled-back transaction are gone: forget them and what was made of them."""
        self._reasons.clear()
        self._check_templates.clear()


def report_fields_of(conn, shas) -> dict:
    """sha256 -> report_fields_sha256 of the stored report rows among ``shas``."""
    found = {}
    unique = list(dict.fromkeys(shas))
    columns = ", ".join(COVERED_REPORT_FIELDS)
    for start in range(0, len(unique), 500):
        part = unique[start:start + 500]
        for row in conn.execute(f"SELECT {columns} FROM reports WHERE sha256 IN ({', '.join('?' * len(part))})", part):
            found[row[0]] = report_fields_sha256(row)
    return found


def backup(archive: Archive, dest) -> int:
    """A consistent copy (VACUUM INTO, safe while others write) that never overwrites; returns its size."""
    dest = Path(dest)
    if dest.exists():
        raise ArchiveError(f"{dest}: already exists", hint="a backup never overwrites; choose a new file name")
    try:
        archive.conn.execute("VACUUM INTO ?", (str(dest),))
    except sqlite3.DatabaseError as exc:
        raise ArchiveError(f"{dest}: backup failed: {exc}", hint="check the directory exists and the free space") from None
    return dest.stat().st_size
