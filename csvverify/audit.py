"""Batch audit: walk inputs, verify them in parallel, store every verdict in the archive.

Workers (``--jobs``, default = cores) read and verify; the main process is the only writer and stores
results in batches, one transaction each (``Archive.store``). An input already verified under the same
settings fingerprint and tool version is not verified again unless ``force``; a rerun after a crash
therefore resumes where the last committed batch ended. Every input becomes exactly one row: an
unreadable, garbage, huge or special file becomes an error verdict and the batch goes on.

``reappraise`` runs the stored report bytes through the same machinery under new settings and reports
which verdicts flip; it adds verdicts and never changes old ones.
"""

import fnmatch
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from csvverify import __version__
from csvverify.appraise import Appraiser, Settings
from csvverify.archive import Archive, Archived, Context, connect, display_path, insert_values
from csvverify.audit_workers import Stored, WalkError, default_jobs, results
from csvverify.hashing import sha256
from csvverify.verdict import ExitClass, worst

BATCH = 1024  # verdicts per write transaction (larger batches rewrite the indexes' pages less often)
FIRST_BATCH = 256  # ... but the first is committed early: a run stopped soon after it started has kept work
BATCH_SECONDS = 1.0  # ... or fewer, when this long has passed since the last commit
FAILURES_KEPT = 20


# -- inputs ----------------------------------------------------------------------------------------

def walk(paths: Iterable, recursive: bool = False, pattern: str | None = None) -> Iterator:
    """Files under the given paths, lazily (no listing is held in memory). Explicit paths are always taken;
    directory entries must match ``pattern`` (a glob on the file name, or on the path below the directory
    given when it contains "/"). Paths are made absolute (not resolved: a symlink stays a path of its own).
    Symlinked directories are not followed; anything else that is not a directory (FIFO, dangling link,
    link loop) is yielded and becomes an error verdict."""
    for top in paths:
        top = os.path.abspath(os.fspath(top))  # one spelling per file: ./a and a are the same place
        if os.path.isdir(top):
            yield from _walk_dir(top, recursive, pattern)
        else:
            yield top


def _walk_dir(top: str, recursive: bool, pattern: str | None) -> Iterator:
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            entries = os.scandir(folder)
        except OSError as exc:
            yield WalkError(folder, f"{display_path(folder)}: cannot list the directory: {exc.strerror}")
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if recursive:
                            stack.append(entry.path)
                        continue
                    if entry.is_symlink() and entry.is_dir():
                        continue  # a symlinked directory: not followed (cycles)
                except OSError:
                    pass  # an entry that cannot be examined is read like any file and reports why
                if pattern is None or _matches(entry.path, top, pattern):
                    yield entry.path


def _matches(path: str, top: str, pattern: str) -> bool:
    if "/" in pattern:
        return fnmatch.fnmatchcase(os.path.relpath(path, top), pattern)
    return fnmatch.fnmatchcase(os.path.basename(path), pattern)


def count_inputs(paths: Iterable, recursive: bool = False, pattern: str | None = None) -> int:
    return sum(1 for _ in walk(paths, recursive, pattern))


# -- settings fingerprint --------------------------------------------------------------------------

def settings_fingerprint(appraiser: Appraiser) -> tuple[str, dict]:
    """SHA-256 over everything besides the report that can change a verdict, and its readable description.
    Two runs with the same fingerprint and tool version give the same verdict for the same bytes. The
    policy's evaluation time counts when it was given (--as-of) or when the policy has dated rules."""
    s = appraiser.settings
    finder = appraiser.collateral
    collateral = None
    if s.chain:
        collateral = {"certs_dir": str(s.collateral.certs_dir.resolve()) if s.collateral.certs_dir else None}
        if finder is not None and finder.fixed is not None:
            collateral["hsk_sha256"] = sha256(finder.fixed.hsk).hex()
            collateral["cek_sha256"] = sha256(finder.fixed.cek).hex()
        from csvverify.collateral import standard_paths

        collateral["standard_paths"] = standard_paths()
    store = None
    if s.use_store and s.chain:
        from csvverify.store import CertStore

        index = CertStore().dir / "index.json"
        store = sha256(index.read_bytes()).hex() if index.is_file() else "empty"
    desc = {
        "chain": s.chain,
        "trust_roots": [r.fingerprint for r in s.roots.roots],
        "collateral": collateral,
        "trust_store_index_sha256": store,
        "expect": {"user_data": [v.hex() for v in s.expect.user_data], "mnonce": [v.hex() for v in s.expect.mnonce],
                   "measure": [v.hex() for v in s.expect.measure]},
        "report_version": s.report_version,
        "policy_sha256": policy_sha256(s),
    }
    policy = getattr(s, "policy", None)
    if policy is not None and policy.as_of is not None and (policy.as_of_given or policy.dated):
        desc["policy_as_of"] = policy.as_of.isoformat()  # only then, so other fingerprints stay as they were
    return sha256(json.dumps(desc, sort_keys=True).encode()).hex(), desc


def policy_sha256(settings: Settings) -> str | None:
    """The appraisal policy's SHA-256 once settings carry a policy (``Settings.policy.sha256``), else None."""
    policy = getattr(settings, "policy", None)
    return getattr(policy, "sha256", None) if policy is not None else None


def context(appraiser: Appraiser, run_id: int | None, settings_sha: str) -> Context:
    s = appraiser.settings
    roots = json.dumps([r.fingerprint for r in s.roots.roots])
    return Context(run_id, settings_sha, policy_sha256(s), s.chain, roots)


# -- the writer side -------------------------------------------------------------------------------

@dataclass
class Summary:
    run_id: int | None  # None for a dry run
    settings_sha256: str
    inputs: int = 0
    new: Counter = field(default_factory=Counter)  # outcome -> verdicts stored by this run
    archived: Counter = field(default_factory=Counter)  # outcome -> inputs whose verdict was already stored
    failing_checks: Counter = field(default_factory=Counter)
    classes: set = field(default_factory=set)
    failures: list = field(default_factory=list)  # (verdict id, path, outcome, failed checks), the first few
    flips: Counter = field(default_factory=Counter)  # (old outcome, new outcome) -> count (re-appraisal)
    flipped: list = field(default_factory=list)  # (old id, new id or None, path, old, new), the first few
    withheld: int = 0  # re-appraisal: reports stored without bytes
    carried: list = field(default_factory=list)  # re-appraisal: options carried over from the stored settings
    weaker: list = field(default_factory=list)  # re-appraisal: how it checks less than them (accepted)
    seconds: float = 0.0
    replay: dict = field(default_factory=dict)

    @property
    def exit_class(self) -> ExitClass:
        return worst(ExitClass(c) for c in self.classes)

    @property
    def rate(self) -> float:
        return self.inputs / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        outcomes = sorted(set(self.new) | set(self.archived))
        return {
            "schema": "csvverify/audit/v1", "tool": {"name": "csvverify", "version": __version__},
            "run_id": self.run_id, "settings_sha256": self.settings_sha256, "inputs": self.inputs,
            "seconds": round(self.seconds, 3), "exit_class": int(self.exit_class),
            "outcomes": {o: {"new": self.new[o], "already_archived": self.archived[o]} for o in outcomes},
            "failing_checks": dict(self.failing_checks.most_common()),
            "failures": [{"verdict_id": v, "path": p, "outcome": o, "failed_checks": f.split()}
                         for v, p, o, f in self.failures],
            "flips": [{"from": a, "to": b, "count": n} for (a, b), n in sorted(self.flips.items())],
            "flipped": [{"baseline_verdict_id": a, "new_verdict_id": b, "path": p, "from": x, "to": y}
                        for a, b, p, x, y in self.flipped],
            "reports_without_bytes": self.withheld,
            "carried_over": self.carried,
            "weaker_than_stored": self.weaker,
            "replay": self.replay,
        }


class BatchWriter:
    def __init__(self, archive: Archive, summary: Summary, force: bool, store: bool = True):
        self.archive, self.summary, self.force, self.write = archive, summary, force, store
        self.pending: list = []
        self.limit = min(FIRST_BATCH, BATCH)
        self.last = time.monotonic()
        archive.conn.execute("CREATE TEMP TABLE IF NOT EXISTS run_reports (sha256 TEXT PRIMARY KEY) WITHOUT ROWID")
        archive.conn.execute("DELETE FROM temp.run_reports")

    def add(self, task, result) -> None:
        self.pending.append((task, result))
        if len(self.pending) >= self.limit or time.monotonic() - self.last >= BATCH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        items = [r for _, r in self.pending]
        if self.write:
            stored = self.archive.store(items, self.summary.settings_sha256, self.summary.run_id, self.force)
        else:
            stored = [r if isinstance(r, Archived) else None for r in items]
        shas = [r.sha256 for r in items if r.sha256 is not None]
        insert_values(self.archive.conn, "temp.run_reports", ("sha256",), shas, "ON CONFLICT DO NOTHING")
        for (task, result), outcome in zip(self.pending, stored):
            self._account(task, result, outcome)
        self.pending.clear()
        self.limit = BATCH
        self.last = time.monotonic()

    def _account(self, task, result, stored) -> None:
        s = self.summary
        s.inputs += 1
        if isinstance(stored, Archived):
            s.archived[stored.outcome] += 1
            verdict_id, outcome, cls, failed = stored.verdict_id, stored.outcome, stored.exit_class, stored.failed_checks
        else:
            s.new[result.outcome] += 1
            verdict_id, outcome, cls, failed = stored, result.outcome, result.exit_class, result.failed_checks
        s.classes.add(cls)
        s.failing_checks.update(failed.split())
        if outcome != "pass" and len(s.failures) < FAILURES_KEPT:
            s.failures.append((verdict_id, result.path, outcome, failed))
        if isinstance(task, Stored) and task.baseline_outcome is not None and task.baseline_outcome != outcome:
            s.flips[(task.baseline_outcome, outcome)] += 1
            if len(s.flipped) < FAILURES_KEPT:
                s.flipped.append((task.baseline_id, verdict_id, task.path, task.baseline_outcome, outcome))


def _run(archive: Archive, command: str, tasks: Iterable, settings: Settings, arguments: dict, jobs: int,
         force: bool, progress=None, store: bool = True, appraiser: Appraiser | None = None,
         fingerprint: tuple[str, dict] | None = None) -> Summary:
    """``fingerprint``: settings_fingerprint(appraiser) when the caller has worked it out already."""
    started = time.monotonic()
    appraiser = appraiser or Appraiser(settings)  # checks the options once, before any worker starts
    settings_sha, description = fingerprint or settings_fingerprint(appraiser)
    run_id = archive.start_run(command, settings_sha, description, arguments) if store else None
    ctx = context(appraiser, run_id, settings_sha)
    summary = Summary(run_id, settings_sha)
    writer = BatchWriter(archive, summary, force, store)
    for task, result in results(tasks, settings, ctx, archive.path, force, jobs):
        writer.add(task, result)
        if progress is not None:
            progress(1)
    writer.flush()
    if store:
        archive.finish_run(run_id, summary.inputs, sum(summary.new.values()), sum(summary.archived.values()))
        archive.checkpoint()
    from csvverify.replay import replay_counts

    summary.replay = replay_counts(archive.conn, scope="temp.run_reports")
    summary.seconds = time.monotonic() - started
    return summary


def audit(archive: Archive, paths: list, settings: Settings, *, recursive: bool = False, pattern: str | None = None,
          jobs: int | None = None, force: bool = False, progress=None, appraiser: Appraiser | None = None,
          options: dict | None = None) -> Summary:
    """Verify every input under ``paths`` into the archive (``appraiser``: one already built from ``settings``;
    ``options``: the trust options as given, recorded for re-appraisal, see carryover.recorded_options)."""
    arguments = {"paths": [display_path(p) for p in paths], "recursive": recursive, "glob": pattern,
                 "force": force, "options": options}
    return _run(archive, "audit", walk(paths, recursive, pattern), settings, arguments, jobs or default_jobs(), force,
                progress, appraiser=appraiser)


def stored_reports(archive: Archive, settings_sha: str, on_withheld=None, page: int = 256) -> Iterator[Stored]:
    """Every archived report with bytes, page by page (short reads: the writer is never held up)."""
    last = 0
    conn = connect(archive.path, readonly=True)
    try:
        while True:
            rows = conn.execute(
                "SELECT r.rowid, r.sha256, r.bytes, "
                " (SELECT path FROM report_paths p WHERE p.report_sha256 = r.sha256 ORDER BY first_seen LIMIT 1), "
                " b.id, b.outcome FROM reports r LEFT JOIN verdicts b ON b.id = ("
                "   SELECT id FROM verdicts v WHERE v.report_sha256 = r.sha256 "
                "   AND NOT (v.settings_sha256 = ? AND v.tool_version = ?) ORDER BY id DESC LIMIT 1) "
                "WHERE r.rowid > ? ORDER BY r.rowid LIMIT ?", (settings_sha, __version__, last, page)).fetchall()
            if not rows:
                return
            for rowid, sha, data, path, baseline_id, baseline_outcome in rows:
                last = rowid
                if data is None:  # kept without bytes (see reports.withheld)
                    if on_withheld is not None:
                        on_withheld()
                    continue
                yield Stored(sha, data, path or f"archive:{sha}", baseline_id, baseline_outcome)
    finally:
        conn.close()


def reappraise(archive: Archive, settings: Settings, *, jobs: int | None = None, force: bool = False,
               dry_run: bool = False, progress=None, baselines=(), explicit: dict | None = None,
               carried: list | None = None, weaker: bool = False, options: dict | None = None) -> Summary:
    """Verify every stored report again under ``settings``; new verdicts point at the one they re-appraise.
    ``baselines`` (carryover.baselines) are the stored verdicts' settings: settings that check less than one
    of them are refused (UsageError) unless ``weaker``, before anything is written."""
    from csvverify.carryover import check_against, unusable
    from csvverify.errors import CsvVerifyError

    try:
        appraiser = Appraiser(settings)
    except CsvVerifyError as exc:
        if not carried:
            raise
        raise unusable(carried, exc) from None
    settings_sha, description = settings_fingerprint(appraiser)
    accepted = check_against(description, list(baselines), explicit or {}, weaker)
    withheld = Counter()
    tasks = stored_reports(archive, settings_sha, lambda: withheld.update(["reports"]))
    summary = _run(archive, "reappraise", tasks, settings, {"force": force, "dry_run": dry_run, "options": options},
                   jobs or default_jobs(), force, progress, store=not dry_run, appraiser=appraiser,
                   fingerprint=(settings_sha, description))
    summary.withheld = withheld["reports"]
    summary.carried = list(carried or [])
    summary.weaker = accepted
    return summary
