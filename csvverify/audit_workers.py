"""Audit workers: processes that read and verify inputs for the one writer (``csvverify.audit``).

``results`` hands chunks of inputs to ``jobs`` worker processes (or verifies in this process when jobs is
1) and yields (input, result) pairs in input order, with a bounded number of chunks in flight so memory
does not grow with the batch. Workers open the archive read-only to skip inputs already verified; they
end with the audit process, even when it is killed.
"""

import os
import time
from collections import deque
from typing import Iterable, Iterator, NamedTuple

from csvverify.appraise import Appraiser, Settings
from csvverify.archive import (Appraisal, Archived, Context, appraisal, connect, display_path, find_existing,
                               find_existing_many)
from csvverify.errors import CsvVerifyError, InputError
from csvverify.hashing import sha256
from csvverify.inputs import read_input
from csvverify.verdict import error_verdict

CHUNK = 256  # inputs per task sent to a worker (fewer hand-overs between processes)...
FIRST_CHUNK = 32  # ... after a ramp from this size, doubling: the first verdicts come soon, small batches balance
WINDOW_PER_JOB = 3  # tasks in flight per worker: bounds memory whatever the input count


class AuditError(CsvVerifyError):
    exit_code = 1


class WalkError(NamedTuple):
    """A place the walk could not enter; it becomes an error verdict like any unreadable input."""

    path: str
    message: str


class Stored(NamedTuple):
    """A report taken from the archive for re-appraisal, with the verdict it is compared against."""

    sha256: str
    data: bytes
    path: str
    baseline_id: int | None
    baseline_outcome: str | None


# -- the worker side ------------------------------------------------------------------------------

class _Input(NamedTuple):
    task: object
    name: str
    data: bytes | None
    sha256: str | None
    error: tuple | None  # (message, hint) when the input could not be read


def _defect(task, exc: Exception) -> _Input:
    name = task.path if isinstance(task, (Stored, WalkError)) else display_path(task)
    return _Input(task, name, None, None, (f"{name}: internal error while verifying: {type(exc).__name__}: {exc}",
                                           "please report this with the input file"))


class Worker:
    """Reads and verifies inputs; looks in the archive (read-only) for verdicts that make work unnecessary.
    Inputs come in chunks: one query per chunk finds those already verified."""

    def __init__(self, settings: Settings, ctx: Context, db_path, force: bool):
        from csvverify import sm2

        sm2.prepare_for_batch()  # this process verifies many reports (a pool worker, or the audit with --jobs 1)
        self.appraiser = Appraiser(settings)
        self.ctx = ctx
        self.conn = connect(db_path, readonly=True)
        self.force = force
        # With force, only this run's own verdicts count (a batch never verifies the same bytes twice).
        self.scope = ctx.run_id if force else None
        self.lookups = not force or ctx.run_id is not None

    def close(self) -> None:
        # Now, not whenever the garbage collector gets to it: a sqlite3 connection sits in a reference cycle
        # (its statement cache), and the last connection to close folds the write-ahead log into the archive.
        self.conn.close()

    def many(self, tasks) -> list:
        inputs = []
        for task in tasks:
            try:
                inputs.append(self._read(task))
            except Exception as exc:  # a defect must not stop the batch: it becomes an error verdict
                inputs.append(_defect(task, exc))
        known = {}
        if self.lookups:
            known = find_existing_many(self.conn, [i.sha256 for i in inputs if i.sha256], self.ctx.settings_sha256,
                                       self.scope)
        results = []
        for item in inputs:
            try:
                results.append(self._result(item, known))
            except Exception as exc:  # ... never a pass
                results.append(self._result(_defect(item.task, exc), {}))
        return results

    @staticmethod
    def _read(task) -> _Input:
        if isinstance(task, Stored):
            return _Input(task, task.path, task.data, task.sha256, None)
        if isinstance(task, WalkError):
            return _Input(task, task.path, None, None, (task.message, None))
        name = display_path(task)
        try:
            data = read_input(task)
        except InputError as exc:
            return _Input(task, name, None, None, (exc.message, exc.hint))
        return _Input(task, name, data, sha256(data).hex(), None)

    def _result(self, item: _Input, known: dict) -> Appraisal | Archived:
        if item.error is not None:
            found = self.lookups and find_existing(self.conn, None, item.name, self.ctx.settings_sha256, self.scope)
            return found or appraisal(error_verdict(item.name, None, *item.error), self.ctx, item.name, None)
        if item.sha256 in known:
            return Archived(item.name, item.sha256, *known[item.sha256])
        stored = isinstance(item.task, Stored)
        baseline = item.task.baseline_id if stored else None
        # A stored report's recorded sha256 is not taken on trust: its bytes are hashed again.
        verdict = self.appraiser.appraise_bytes(item.data, item.name, None if stored else item.sha256)
        return appraisal(verdict, self.ctx, item.name, item.data, reappraises=baseline)


_WORKER: Worker | None = None


def _exit_with(pid: int) -> None:
    """End this worker when the audit process ends, even by SIGKILL: an orphaned pool worker would otherwise
    wait forever on a queue whose writing end it holds itself."""
    import select
    import threading

    def watch():
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            os._exit(1)
        except (AttributeError, OSError):  # pragma: no cover - kernels before 5.3
            while True:
                time.sleep(1)
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    os._exit(1)
        select.select([fd], [], [])
        os._exit(1)

    threading.Thread(target=watch, name="csvverify-parent-watch", daemon=True).start()


def _init_worker(settings, ctx, db_path, force, env, parent_pid):
    global _WORKER
    import gc

    # What this process shares with the forkserver it came from stays shared: the collector no longer visits
    # (and so writes to) those objects, which are the modules and never garbage.
    gc.freeze()
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the audit process's to handle (it stops the pool)
    _exit_with(parent_pid)
    for key in [k for k in os.environ if k.startswith("CSVVERIFY_")]:
        del os.environ[key]
    os.environ.update(env)  # the forkserver's environment may be older than the caller's
    _WORKER = Worker(settings, ctx, db_path, force)


def _run_chunk(tasks):
    return _WORKER.many(tasks)


def _chunks(tasks: Iterable, size: int, first: int | None = None) -> Iterator[list]:
    """Lists of ``size`` tasks (the last may be shorter); from ``first`` tasks, doubling up to ``size``."""
    limit = min(first or size, size)
    chunk = []
    for task in tasks:
        chunk.append(task)
        if len(chunk) >= limit:
            yield chunk
            chunk = []
            limit = min(limit * 2, size)
    if chunk:
        yield chunk


def _worker_env() -> dict:
    return {k: v for k, v in os.environ.items() if k.startswith("CSVVERIFY_") or k in ("HOME", "XDG_DATA_HOME")}


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _forkserver_context(jobs: int):
    """The forkserver context, its server preloading this module; None when jobs <= 1 or on platforms without
    it (forkserver: workers never inherit the writer's open SQLite connection, which is unsafe across fork)."""
    import multiprocessing

    if jobs <= 1 or "forkserver" not in multiprocessing.get_all_start_methods():
        return None
    mp = multiprocessing.get_context("forkserver")
    mp.set_forkserver_preload(["csvverify.audit_workers"])
    return mp


def start_early(jobs: int) -> None:
    """Start the forkserver now: its imports then overlap the caller's own start (opening the archive)."""
    if _forkserver_context(jobs) is not None:
        from multiprocessing import forkserver

        forkserver.ensure_running()


def results(tasks: Iterable, settings: Settings, ctx: Context, db_path, force: bool, jobs: int) -> Iterator:
    """(task, result) pairs in input order; at most jobs × WINDOW_PER_JOB chunks are in flight."""
    if jobs <= 1:
        worker = Worker(settings, ctx, db_path, force)
        try:
            for chunk in _chunks(tasks, CHUNK):
                yield from zip(chunk, worker.many(chunk))
        finally:
            worker.close()
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    mp = _forkserver_context(jobs) or multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(jobs, mp_context=mp, initializer=_init_worker,
                               initargs=(settings, ctx, str(db_path), force, _worker_env(), os.getpid()))
    pending: deque = deque()
    try:
        for chunk in _chunks(tasks, CHUNK, FIRST_CHUNK):
            pending.append((chunk, pool.submit(_run_chunk, chunk)))
            if len(pending) >= jobs * WINDOW_PER_JOB:
                yield from _collect(pending.popleft())
        while pending:
            yield from _collect(pending.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _collect(submitted):
    from concurrent.futures.process import BrokenProcessPool

    chunk, future = submitted
    try:
        return zip(chunk, future.result())
    except BrokenProcessPool:
        raise AuditError("a worker process stopped unexpectedly (killed, or out of memory)",
                         hint="verdicts of the batches committed so far are kept: rerun the same command to resume, "
                              "or use --jobs 1 to see the failure") from None
