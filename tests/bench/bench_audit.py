"""Audit and archive benchmarks, with their baselines measured in the same run.

    python tests/bench/bench_audit.py              # all three parts (first run builds cached corpora: minutes)
    python tests/bench/bench_audit.py throughput   # or: memory, query (several allowed)

throughput  10,000 forge reports over 20 chips, `csvverify audit --chain --jobs 2` into a fresh archive.
            Baseline: `openssl speed sm2` verify/s on one core and with -multi 2.
            Targets: >= 1,500 reports/s and >= 0.5 x (openssl verify/s x 2).
memory      peak RSS (VmHWM) of the audit process and of every process below it, 10,000 vs 100,000 reports.
            Target: <= 150 MB and flat in N.
query       `csvverify db list --chip X` on a synthetic archive of 1,000,000 verdicts (every check row
            present). Baselines: `python -c pass`, `csvverify --help`. Target: <= 100 ms.

Corpora and the large archive are cached under $CSVVERIFY_BENCH_DIR (default /tmp/csvverify-bench).
"""

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audit_corpus import PeakRss, audit_args, corpus, large_archive  # noqa: E402

EXE = [sys.executable, "-m", "csvverify"]


def _env(home: Path) -> dict:
    return {**os.environ, "CSVVERIFY_HOME": str(home), "CSVVERIFY_CERT_PATHS": ""}


def openssl_verify_rate(multi: int | None = None) -> float:
    cmd = ["openssl", "speed", "-seconds", "3"] + (["-multi", str(multi)] if multi else []) + ["sm2"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if "SM2" in line and "bits" in line)
    return float(line.split()[-1])


def run_audit(root: Path, jobs: int, home: Path, sample_memory: bool = False):
    """Wall time of the whole command (start-up included), its own summary and, optionally, peak RSS."""
    db = home / "archive.db"
    cmd = EXE + ["audit", *audit_args(root), "--jobs", str(jobs), "--db", str(db)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(home))
    sampler = PeakRss(proc) if sample_memory else None
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    peaks = sampler.join() if sampler else None
    if proc.returncode not in (0, 1, 3):
        raise SystemExit(f"audit failed ({proc.returncode}): {err or out}")
    return wall, out, (peaks, sampler.peak_pss_total) if sampler else None


def throughput(count: int = 10_000):
    print(f"== throughput: {count} reports over 20 chips, audit --chain ==")
    root = corpus(count)
    one = openssl_verify_rate()
    two = openssl_verify_rate(2)
    print(f"openssl speed sm2 verify/s: {one:8.0f} (one core)   {two:8.0f} (-multi 2)")
    target = 0.5 * one * 2
    rates = {}
    for jobs in (2, 1):
        home = Path(tempfile.mkdtemp(prefix="bench-audit-"))
        wall, out, _ = run_audit(root, jobs, home)
        inside = float(re.search(r"in ([\d.]+) s", out).group(1))
        stored = re.search(r"total\s+(\d+)", out).group(1)
        rates[jobs] = count / wall
        print(f"audit --jobs {jobs}: {wall:6.2f} s wall for {count} inputs ({stored} in the summary) = "
              f"{count / wall:6.0f} reports/s  (inside the command, without start-up: {count / inside:6.0f}/s)")
        shutil.rmtree(home)
    r = rates[2]
    print(f"ratio audit --jobs 2 / (openssl one-core verify/s x 2) = {r / (one * 2):.2f}   "
          f"/ (openssl -multi 2) = {r / two:.2f}")
    print(f"target >= 1500/s: {'met' if r >= 1500 else 'NOT met'} ({r:.0f}/s);  "
          f"target >= 0.5 x openssl x 2 = {target:.0f}/s: {'met' if r >= target else 'NOT met'}")


def memory(counts=(10_000, 100_000)):
    print("== memory: peak RSS (VmHWM) of audit --chain --jobs 2 ==")
    results = {}
    for count in counts:
        root = corpus(count)
        home = Path(tempfile.mkdtemp(prefix="bench-audit-"))
        wall, _, (peaks, pss) = run_audit(root, 2, home, sample_memory=True)
        by_role: dict[str, list[int]] = {}
        for kib, role in peaks.values():
            by_role.setdefault(role, []).append(kib)
        total = sum(kib for kib, _ in peaks.values())
        results[count] = (max(by_role.get("audit (writer)", [0])), max(by_role.get("worker", [0])), total, pss)
        detail = ", ".join(f"{role} {' + '.join(f'{k / 1024:.0f}' for k in sorted(v))} MB"
                           for role, v in sorted(by_role.items()))
        print(f"{count:>7} reports in {wall:5.1f} s: peak RSS {detail}; sum of the peaks {total / 1024:.0f} MB "
              f"(shared pages counted in every process); largest PSS total of the tree {pss / 1024:.0f} MB; "
              f"archive {(home / 'archive.db').stat().st_size / 1e6:.0f} MB")
        shutil.rmtree(home)
    if len(counts) == 2:
        (w1, k1, t1, p1), (w2, k2, t2, p2) = results[counts[0]], results[counts[1]]
        print(f"growth {counts[0]} -> {counts[1]}: writer {w2 / w1:.2f}x, worker {k2 / k1:.2f}x, "
              f"sum of peaks {t2 / t1:.2f}x, PSS total {p2 / p1:.2f}x")
        print(f"target <= 150 MB: audit process {w2 / 1024:.0f} MB, largest worker {k2 / 1024:.0f} MB, "
              f"whole tree {p2 / 1024:.0f} MB PSS ({t2 / 1024:.0f} MB as a sum of per-process peak RSS)")


def _median_wall(cmd, runs=9, env=None):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def query(verdicts: int = 1_000_000):
    print(f"== query: db list --chip on {verdicts} verdicts ==")
    started = time.perf_counter()
    db = large_archive(verdicts)
    print(f"archive {db} ({db.stat().st_size / 1e9:.2f} GB; ready in {time.perf_counter() - started:.0f} s)")
    from csvverify.archive import Archive
    from csvverify.archive_query import Filters, list_verdicts

    chip = "BENCHCHIP0421"
    times = []
    for _ in range(20):
        start = time.perf_counter()
        archive = Archive(db, create=False)
        rows = list(list_verdicts(archive.conn, Filters(chip=chip), 20))
        archive.close()
        times.append(time.perf_counter() - start)
    all_rows = []
    start = time.perf_counter()
    archive = Archive(db, create=False)
    all_rows = list(list_verdicts(archive.conn, Filters(chip=chip), 0))
    all_time = time.perf_counter() - start
    plan = archive.conn.execute("EXPLAIN QUERY PLAN SELECT id FROM verdicts v WHERE v.chip_id = ? ORDER BY v.id DESC "
                                "LIMIT 20", (chip,)).fetchall()
    archive.close()
    print(f"in-process (open + query, 20 newest): median {statistics.median(times) * 1000:.1f} ms "
          f"({len(rows)} rows); all {len(all_rows)} verdicts of the chip: {all_time * 1000:.1f} ms")
    print(f"plan: {'; '.join(str(p[-1]) for p in plan)}")
    env = _env(Path(tempfile.mkdtemp(prefix="bench-query-")))
    base = _median_wall([sys.executable, "-c", "pass"], env=env)
    helps = _median_wall(EXE + ["--help"], env=env)
    listing = _median_wall(EXE + ["db", "list", "--chip", chip, "--db", str(db)], env=env)
    print(f"python -c pass               {base * 1000:7.1f} ms  (baseline)")
    print(f"csvverify --help             {helps * 1000:7.1f} ms  ({helps / base:.1f}x baseline)")
    print(f"csvverify db list --chip X   {listing * 1000:7.1f} ms  ({listing / base:.1f}x baseline; "
          f"{(listing - helps) * 1000:.1f} ms above --help)")
    print(f"target <= 100 ms: query in-process {statistics.median(times) * 1000:.1f} ms, whole command "
          f"{listing * 1000:.1f} ms")


def main(argv):
    parts = argv or ["throughput", "memory", "query"]
    for part in parts:
        {"throughput": throughput, "memory": memory, "query": query}[part]()
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
