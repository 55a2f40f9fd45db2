"""Bench helpers for bench_audit.py: forge corpora on disk (cached), a synthetic large archive, and a sampler
of the peak memory of a process tree.

Corpora live under $CSVVERIFY_BENCH_DIR (default /tmp/csvverify-bench) and are reused between runs.
The sampler never reaps the process it watches, so the caller can take its exact rusage with wait4.
"""

import os
import shutil
import sqlite3
import subprocess
import threading
import time
from multiprocessing import Pool
from pathlib import Path



def bench_dir() -> Path:
    """$CSVVERIFY_BENCH_DIR (default /tmp/csvverify-bench), read when needed (bench_audit --small sets it)."""
    return Path(os.environ.get("CSVVERIFY_BENCH_DIR", "/tmp/csvverify-bench"))

CHIPS = 20
PER_DIR = 1000
_FORGE = None


def chip_id(i: int) -> str:
    return f"BENCHCHIP{i % CHIPS:04d}"


def _init():
    global _FORGE
    from csvverify.forge import Forge

    _FORGE = Forge(signer="fast")


def _write(args):
    out, i = args
    # Blanked sealing-key field, as collectors leave it: the archive then keeps the report bytes too.
    data = _FORGE.report(1, chip_id=chip_id(i), user_data=b"bench report %d" % i, sealing_key=bytes(32))
    (Path(out) / f"d{i // PER_DIR:04d}" / f"r{i:07d}.cert").write_bytes(data)


def corpus(count: int) -> Path:
    """bench_dir()/corpus-<count>: reports/ (PER_DIR per folder), certs/<chip>/hsk_cek.cert, test-root.cert."""
    root = bench_dir() / f"corpus-{count}"
    if (root / "complete").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    from csvverify.forge import Forge

    forge = Forge(signer="fast")
    for c in range(CHIPS):
        (root / "certs" / chip_id(c)).mkdir(parents=True)
        (root / "certs" / chip_id(c) / "hsk_cek.cert").write_bytes(forge.hsk_cek(chip_id(c)))
    (root / "test-root.cert").write_bytes(forge.root_cert)
    for d in range(0, count, PER_DIR):
        (root / "reports" / f"d{d // PER_DIR:04d}").mkdir(parents=True)
    with Pool(os.cpu_count(), initializer=_init) as pool:
        for _ in pool.imap_unordered(_write, ((str(root / "reports"), i) for i in range(count)), chunksize=500):
            pass
    (root / "complete").write_text(str(count))
    return root


def audit_args(root: Path) -> list[str]:
    return [str(root / "reports"), "--recursive", "--chain", "--certs", str(root / "certs"),
            "--trust-root", str(root / "test-root.cert")]


def large_archive(verdicts: int, chips: int = 1000) -> Path:
    """An archive with ``verdicts`` synthetic verdicts (one report each, every check row present) made with
    SQL at C speed. Hashes are placeholders: this archive serves query timing only."""
    path = bench_dir() / f"archive-{verdicts}.db"
    if path.exists() and (bench_dir() / f"archive-{verdicts}.complete").exists():
        from csvverify.archive import Archive

        Archive(path).close()  # a cached archive gets newer migrations (indexes) now, not inside a timing
        return path
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    from csvverify.archive import Archive
    from csvverify.verdict import CHECKS

    Archive(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA cache_size = -200000")
    conn.execute("BEGIN")
    conn.execute("INSERT INTO settings VALUES ('bench', '{}', '2026-01-01T00:00:00.000Z')")
    conn.execute("INSERT INTO runs (id, command, started_at, tool_version, settings_sha256) "
                 "VALUES (1, 'audit', '2026-01-01T00:00:00.000Z', 'bench', 'bench')")
    conn.execute("INSERT INTO reasons (id, text) VALUES (1, 'synthetic reason')")
    conn.execute(f"""
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {verdicts})
        INSERT INTO reports (sha256, size, version, chip_id, vm_id, measure, user_data, mnonce, policy, sealing_key,
                             first_seen)
        SELECT printf('%064x', i), 2548, 1, printf('BENCHCHIP%04d', i % {chips}), printf('%032x', i),
               printf('%064x', i % 50), printf('%0128x', i), printf('%032x', i), 1, 'blanked',
               strftime('%Y-%m-%dT%H:%M:%fZ', 1767225600 + i, 'unixepoch') FROM n""")
    conn.execute(f"""
        INSERT INTO verdicts (id, run_id, appraised_at, path, report_sha256, chip_id, outcome, exit_class,
                              failed_checks, tool_version, settings_sha256, chain, trust_roots, findings,
                              prev_hash, hash)
        SELECT rowid, 1, first_seen, '/evidence/' || sha256 || '.cert', sha256, chip_id,
               CASE WHEN rowid % 97 = 0 THEN 'fail' ELSE 'pass' END, CASE WHEN rowid % 97 = 0 THEN 3 ELSE 0 END,
               CASE WHEN rowid % 97 = 0 THEN 'report.signature' ELSE '' END, 'bench', 'bench', 1, '[]', '[]',
               printf('%064x', rowid - 1), printf('%064x', rowid) FROM reports""")
    values = ", ".join(f"({pos}, '{cid}')" for pos, cid in enumerate(CHECKS))
    conn.execute(f"""
        WITH c(pos, cid) AS (VALUES {values})
        INSERT INTO checks (verdict_id, position, check_id, status, reason_id)
        SELECT v.id, c.pos, c.cid, CASE WHEN c.cid = 'report.signature' AND v.outcome = 'fail' THEN 'fail'
               ELSE 'pass' END, 1 FROM verdicts v, c ORDER BY v.id, c.pos""")
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    (bench_dir() / f"archive-{verdicts}.complete").write_text("")
    return path


def _descendants(pid: int) -> list[tuple[int, int]]:
    """(pid, parent pid) of every process below ``pid``."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        children = [p for p, parent in parents.items() if parent == current]
        found += [(child, current) for child in children]
        frontier += children
    return found


def _kib(path: str, key: str) -> int | None:
    """The value in KiB of a ``Key:  123 kB`` line of a /proc file (None if the process is gone)."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _pss_kib(pid: int) -> int:
    """Proportional set size: shared pages divided among the processes sharing them (sums meaningfully)."""
    return _kib(f"/proc/{pid}/smaps_rollup", "Pss:") or 0


def _hwm_kib(pid: int) -> int | None:
    """Peak resident set size of the process so far."""
    return _kib(f"/proc/{pid}/status", "VmHWM:")


class PeakRss:
    """Samples VmHWM (peak resident set) of a process and all its descendants until it exits."""

    def __init__(self, proc: subprocess.Popen, interval: float = 0.05):
        self.proc, self.interval = proc, interval
        self.peaks: dict[int, tuple[int, str]] = {}
        self.peak_pss_total = 0  # KiB, the largest sum of PSS over the tree seen in one sample
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _alive(self) -> bool:
        """Still running, asked without reaping it (WNOWAIT): the caller's wait4 gets its rusage."""
        try:
            return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:
            return False

    def _run(self):
        while self._alive():
            tree = [(self.proc.pid, None)] + _descendants(self.proc.pid)
            self.peak_pss_total = max(self.peak_pss_total, sum(_pss_kib(pid) for pid, _ in tree))
            for pid, parent in tree:
                hwm = _hwm_kib(pid)
                if hwm is not None:
                    role = self.peaks[pid][1] if pid in self.peaks else self._role(pid, parent)
                    self.peaks[pid] = (max(hwm, self.peaks.get(pid, (0, ""))[0]), role)
            time.sleep(self.interval)

    def _role(self, pid: int, parent: int | None) -> str:
        if parent is None:
            return "audit (writer)"
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return "?"
        if "resource_tracker" in cmd:
            return "resource tracker"
        return "forkserver" if parent == self.proc.pid else "worker"

    def join(self):
        self.thread.join()
        return self.peaks
