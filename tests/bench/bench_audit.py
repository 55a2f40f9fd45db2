"""Audit and archive benchmarks, with their baselines measured in the same run.

    python tests/bench/bench_audit.py              # all three parts (first run builds cached corpora: minutes)
    python tests/bench/bench_audit.py throughput   # or: memory, query (several allowed)
    python tests/bench/bench_audit.py --small      # a smoke run with tiny sizes (checks the script, not targets)

throughput  10,000 forge reports over 20 chips, `csvverify audit --chain --jobs 2` into a fresh archive; every
            report must pass (the run stops otherwise). Baseline: `openssl speed sm2` verify/s on one core
            and with -multi 2, in the same rounds (three, interleaved: a noisy machine slows both sides at
            once). Targets on the medians: >= 1,500 reports/s and >= 0.5 x (openssl one-core verify/s x 2).
            A --jobs 1 run is shown for comparison.
memory      peak RSS of the audit process tree, 10,000 vs 100,000 reports: by ru_maxrss from wait4 (the
            largest single process among the audit process and the descendants it reaped; never below this
            bench process's own size, since a child starts with its parent's pages, so an upper bound) and
            per process by sampling VmHWM (a high-water mark: a sample misses only a process's last 50 ms).
            Targets: <= 150 MB (the largest process, and the whole tree's PSS) and flat in N (the 100,000
            run's peaks at most FLAT x the 10,000 run's).
query       `csvverify db list --chip X` (and `--chip X --outcome fail`) on a synthetic archive of 1,000,000
            verdicts (every check row present). Baselines: `python -c pass`, `csvverify --help`.
            Target: <= 100 ms for the whole command.

Every target prints "met" or "NOT met". Corpora and the large archive are cached under $CSVVERIFY_BENCH_DIR
(default /tmp/csvverify-bench).
"""

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audit_corpus import PeakRss, audit_args, corpus, large_archive  # noqa: E402
from bench_common import compile_package, median_wall, verdict  # noqa: E402

EXE = [sys.executable, "-m", "csvverify"]
RATE_TARGET = 1500  # reports/s
OPENSSL_SHARE = 0.5  # of openssl's one-core verify rate x 2
RSS_TARGET_MB = 150
FLAT = 1.25  # "flat in N": the 10x larger run may peak this much higher at most
QUERY_TARGET_MS = 100
ROUNDS = 3  # throughput rounds (--small: 1)
SIZES = {"throughput": 10_000, "memory": (10_000, 100_000), "query": 1_000_000}
SMALL = {"throughput": 300, "memory": (200, 600), "query": 20_000}


def _env(home: Path) -> dict:
    return {**os.environ, "CSVVERIFY_HOME": str(home), "CSVVERIFY_CERT_PATHS": ""}


def openssl_verify_rate(multi: int | None = None, seconds: int = 3) -> float:
    cmd = ["openssl", "speed", "-seconds", str(seconds)] + (["-multi", str(multi)] if multi else []) + ["sm2"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if "SM2" in line and "bits" in line)
    return float(line.split()[-1])


def _communicate_and_wait4(proc: subprocess.Popen) -> tuple[str, str, int]:
    """Read both pipes, then reap the child with wait4: (stdout, stderr, ru_maxrss in KiB)."""
    out, err = [], []
    readers = [threading.Thread(target=lambda s=s, b=b: b.append(s.read())) for s, b in
               ((proc.stdout, out), (proc.stderr, err))]
    for r in readers:
        r.start()
    for r in readers:
        r.join()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return out[0], err[0], usage.ru_maxrss


def _own_rss_mb() -> float:
    """This process's peak resident size: the floor of a child's ru_maxrss (see the module docstring)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_audit(root: Path, jobs: int, home: Path, count: int, sample_memory: bool = False) -> dict:
    """Run one audit (start-up included) and insist that every report passed and was stored new."""
    db = home / "archive.db"
    cmd = EXE + ["audit", *audit_args(root), "--jobs", str(jobs), "--db", str(db), "--json"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(home))
    sampler = PeakRss(proc) if sample_memory else None
    out, err, maxrss = _communicate_and_wait4(proc)
    wall = time.perf_counter() - start
    peaks = sampler.join() if sampler else None
    if proc.returncode != 0:
        raise SystemExit(f"audit exited {proc.returncode}, expected 0 (every report passing): {err or out[-2000:]}")
    doc = json.loads(out)
    expected = {"pass": {"new": count, "already_archived": 0}}
    if doc["inputs"] != count or doc["outcomes"] != expected:
        raise SystemExit(f"audit of {count} good reports gave {doc['inputs']} inputs, outcomes {doc['outcomes']}, "
                         f"failing checks {doc['failing_checks']}: not a valid benchmark run")
    return {"wall": wall, "inside": doc["seconds"], "maxrss_kib": maxrss, "peaks": peaks,
            "pss_kib": sampler.peak_pss_total if sampler else None}


def throughput(count: int, openssl_seconds: int = 3, rounds: int = ROUNDS):
    """Rounds of (openssl one core, openssl -multi 2, audit --jobs 2), interleaved so that both sides see the
    same moments of a noisy machine; the targets use the median of each side (the range is printed too)."""
    print(f"== throughput: {count} reports over 20 chips, audit --chain, median of {rounds} interleaved rounds ==")
    root = corpus(count)
    one, two, rates = [], [], []
    for _ in range(rounds):
        one.append(openssl_verify_rate(seconds=openssl_seconds))
        two.append(openssl_verify_rate(2, seconds=openssl_seconds))
        home = Path(tempfile.mkdtemp(prefix="bench-audit-"))
        run = run_audit(root, 2, home, count)
        shutil.rmtree(home)
        rates.append(count / run["wall"])
        print(f"  openssl speed sm2 verify/s {one[-1]:6.0f} (one core) {two[-1]:6.0f} (-multi 2); audit --jobs 2: "
              f"{run['wall']:5.2f} s wall, all {count} passed = {rates[-1]:5.0f} reports/s (inside the command, "
              f"without start-up: {count / run['inside']:5.0f}/s); ratio {rates[-1] / (one[-1] * 2):.2f}")
    home = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    single = run_audit(root, 1, home, count)
    shutil.rmtree(home)
    print(f"audit --jobs 1 (once): {single['wall']:5.2f} s wall = {count / single['wall']:5.0f} reports/s")
    one_m, two_m, r = statistics.median(one), statistics.median(two), statistics.median(rates)
    print(f"medians: openssl {one_m:.0f}/s one core, {two_m:.0f}/s -multi 2; audit --jobs 2 {r:.0f} reports/s "
          f"(range {min(rates):.0f}-{max(rates):.0f})")
    share = OPENSSL_SHARE * one_m * 2
    print(f"ratio audit --jobs 2 / (openssl one-core verify/s x 2) = {r / (one_m * 2):.2f}   / (openssl -multi 2) = "
          f"{r / two_m:.2f}")
    print(f"target >= {RATE_TARGET} reports/s: {verdict(r >= RATE_TARGET)} ({r:.0f}/s)")
    print(f"target >= {OPENSSL_SHARE} x openssl x 2 = {share:.0f}/s: {verdict(r >= share)} ({r:.0f}/s)")


def memory(counts):
    print("== memory: peak RSS of audit --chain --jobs 2 ==")
    results = {}
    for count in counts:
        root = corpus(count)
        home = Path(tempfile.mkdtemp(prefix="bench-audit-"))
        run = run_audit(root, 2, home, count, sample_memory=True)
        by_role: dict[str, list[int]] = {}
        for kib, role in run["peaks"].values():
            by_role.setdefault(role, []).append(kib)
        largest = max([run["maxrss_kib"]] + [kib for kib, _ in run["peaks"].values()])
        results[count] = (largest, run["pss_kib"], max(by_role.get("audit (writer)", [0])),
                          max(by_role.get("worker", [0])))
        detail = ", ".join(f"{role} {' + '.join(f'{k / 1024:.0f}' for k in sorted(v))} MB"
                           for role, v in sorted(by_role.items()))
        print(f"{count:>7} reports in {run['wall']:5.1f} s: ru_maxrss {run['maxrss_kib'] / 1024:.0f} MB "
              f"(largest reaped process; never below this bench's own {_own_rss_mb():.0f} MB); "
              f"sampled VmHWM {detail}; largest PSS total of the tree "
              f"{run['pss_kib'] / 1024:.0f} MB; archive {(home / 'archive.db').stat().st_size / 1e6:.0f} MB")
        shutil.rmtree(home)
    big = counts[-1]
    largest, pss, _, _ = results[big]
    print(f"target <= {RSS_TARGET_MB} MB, largest process ({big} reports): {verdict(largest / 1024 <= RSS_TARGET_MB)} "
          f"({largest / 1024:.0f} MB)")
    print(f"target <= {RSS_TARGET_MB} MB, whole tree PSS ({big} reports): {verdict(pss / 1024 <= RSS_TARGET_MB)} "
          f"({pss / 1024:.0f} MB)")
    if len(counts) == 2:
        (l1, p1, w1, k1), (l2, p2, w2, k2) = results[counts[0]], results[counts[1]]
        growth = {"largest process": l2 / l1, "tree PSS": p2 / p1, "writer": w2 / max(w1, 1),
                  "worker": k2 / max(k1, 1)}
        flat = all(g <= FLAT for g in growth.values())
        print(f"target flat in N ({counts[0]} -> {counts[1]}, each <= {FLAT}x): {verdict(flat)} ("
              + ", ".join(f"{k} {g:.2f}x" for k, g in growth.items()) + ")")


def query(verdicts: int):
    print(f"== query: db list --chip on {verdicts} verdicts ==")
    started = time.perf_counter()
    db = large_archive(verdicts)
    print(f"archive {db} ({db.stat().st_size / 1e9:.2f} GB; ready in {time.perf_counter() - started:.0f} s)")
    from csvverify.archive import Archive
    from csvverify.archive_query import Filters, list_verdicts

    chip = "BENCHCHIP0421"
    env = _env(Path(tempfile.mkdtemp(prefix="bench-query-")))
    base = median_wall([[sys.executable, "-c", "pass"]], 9, env)
    helps = median_wall([EXE + ["--help"]], 9, env)
    print(f"python -c pass               {base * 1000:7.1f} ms  (baseline)")
    print(f"csvverify --help             {helps * 1000:7.1f} ms  ({helps / base:.1f}x baseline)")
    for label, filters, extra in (("--chip X", Filters(chip=chip), []),
                                  ("--chip X --outcome fail", Filters(chip=chip, outcome="fail"),
                                   ["--outcome", "fail"])):
        times = []
        for _ in range(20):
            start = time.perf_counter()
            archive = Archive(db, create=False)
            rows = list(list_verdicts(archive.conn, filters, 20))
            archive.close()
            times.append(time.perf_counter() - start)
        archive = Archive(db, create=False)
        where, args = filters.where()
        plan = archive.conn.execute(f"EXPLAIN QUERY PLAN SELECT v.id FROM verdicts v{where} ORDER BY v.id DESC "
                                    "LIMIT 20", args).fetchall()
        archive.close()
        if not rows and not extra:
            raise SystemExit(f"db list {label} found nothing in the synthetic archive: not a valid benchmark run")
        listing = median_wall([EXE + ["db", "list", "--chip", chip, *extra, "--db", str(db)]], 9, env)
        print(f"db list {label}: in-process (open + query, 20 newest) median "
              f"{statistics.median(times) * 1000:.1f} ms ({len(rows)} rows); plan: "
              f"{'; '.join(str(p[-1]) for p in plan)}")
        print(f"csvverify db list {label:<24} {listing * 1000:7.1f} ms  ({listing / base:.1f}x baseline; "
              f"{(listing - helps) * 1000:.1f} ms above --help)")
        print(f"target <= {QUERY_TARGET_MS} ms, whole command db list {label}: "
              f"{verdict(listing * 1000 <= QUERY_TARGET_MS)} ({listing * 1000:.1f} ms)")


def main(argv):
    small = "--small" in argv
    parts = [a for a in argv if a != "--small"] or ["throughput", "memory", "query"]
    sizes = SMALL if small else SIZES
    compile_package(os.environ)
    if small:
        os.environ.setdefault("CSVVERIFY_BENCH_DIR", str(Path(tempfile.gettempdir()) / "csvverify-bench-small"))
        print("(--small: tiny sizes to check the script works; the figures say nothing about the targets)\n")
    for part in parts:
        if part == "throughput":
            throughput(sizes["throughput"], openssl_seconds=1 if small else 3, rounds=1 if small else ROUNDS)
        elif part == "memory":
            memory(sizes["memory"])
        elif part == "query":
            query(sizes["query"])
        else:
            raise SystemExit(f"unknown part {part!r}: throughput, memory, query (and --small)")
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
