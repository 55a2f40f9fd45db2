"""Launch digest speed and memory: `csvverify digest` on generated 4 MB firmware + 12 MB kernel + 64 MB initrd.

    python tests/bench/bench_digest.py            # the full benchmark
    python tests/bench/bench_digest.py --quick    # a smoke run: small inputs, few runs (targets not meaningful)

Baseline measured in the same run on the same (cached) files: `openssl dgst -sm3` on the firmware plus
`sha256sum` on kernel and initrd, the minimum any tool must hash. Prints the median wall times and the
ratio (target <= 1.2x), then the peak RSS of `csvverify digest` as each input grows in turn (firmware,
kernel, initrd) and of `--match` as the initrd grows (target: flat). Each target is printed as "met" or
"NOT met".
"""

import argparse
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import executable, median_wall, verdict  # noqa: E402

MiB = 1 << 20
WALL_TARGET = 1.2  # csvverify digest <= 1.2x the baseline
FLAT_MIB = 4.0  # peak RSS may move by less than this across the sizes
CMDLINE = "console=ttyS0"


def _area_tail() -> bytes:
    from csvverify.digest import ovmf

    return ovmf.encode_footer_table([(ovmf.HASH_TABLE_AREA_GUID, struct.pack("<II", 0x810C00, 0x400))])


def _inputs(folder: Path, scale: int) -> dict:
    rng = random.Random(6)
    tail = _area_tail()
    kernel = bytearray(rng.randbytes(12 * MiB // scale))
    kernel[0x202:0x208] = b"HdrS\x0f\x02"
    files = {"fw": (rng.randbytes(4 * MiB // scale - len(tail)) + tail), "kernel": bytes(kernel),
             "initrd": rng.randbytes(64 * MiB // scale)}
    paths = {}
    for name, data in files.items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    return paths


def _sparse(path: Path, size: int, head: bytes = b"", tail: bytes = b"") -> Path:
    """A sparse file of ``size`` bytes starting with ``head`` and ending with ``tail``."""
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size - len(tail))
        f.seek(size - len(tail))
        f.write(tail)
    return path


# A forked child starts with its parent's resident pages, so ru_maxrss of a child of this (large) process
# would report our own size. A small launcher process runs the command and reports its child's peak.
_LAUNCHER = ("import os, subprocess, sys\n"
             "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
             "_, status, usage = os.wait4(p.pid, 0)\n"
             "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)\n")


def _peak_rss_mib(cmd, expect_exit: int = 0) -> float:
    out = subprocess.run([sys.executable, "-c", _LAUNCHER, *map(str, cmd)], check=True, capture_output=True,
                         text=True).stdout.split()
    assert out[0] == str(expect_exit), f"{cmd} exited {out[0]}, expected {expect_exit}"
    return int(out[1]) / 1024


def _rss_series(title: str, sizes_mib, command_for, expect_exit: int = 0) -> bool:
    print(f"\npeak RSS of {title} (sparse files):")
    rss = []
    for size in sizes_mib:
        rss.append(_peak_rss_mib(command_for(size), expect_exit))
        print(f"  {size:6d} MiB   peak RSS {rss[-1]:6.1f} MiB")
    growth = rss[-1] - rss[0]
    flat = abs(growth) < FLAT_MIB
    print(f"  growth from {sizes_mib[0]} to {sizes_mib[-1]} MiB: {growth:+.1f} MiB; "
          f"target RSS flat (< {FLAT_MIB:.0f} MiB): {verdict(flat)}")
    return flat


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small inputs and few runs: a smoke run only")
    args = parser.parse_args()
    scale, runs = (16, 2) if args.quick else (1, 7)

    from csvverify.digest import launch_digest

    exe = executable()
    for tool in ("openssl", "sha256sum"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed for the baseline")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        p = _inputs(tmp, scale)

        def ours(fw=p["fw"], kernel=p["kernel"], initrd=p["initrd"], extra=()):
            return [exe, "digest", "--ovmf", fw, "--kernel", kernel, "--initrd", initrd, "--cmdline", CMDLINE, *extra]

        baseline = [["openssl", "dgst", "-sm3", p["fw"]], ["sha256sum", p["kernel"], p["initrd"]]]
        cli_out = subprocess.run(ours(), check=True, capture_output=True, text=True).stdout.strip()
        library = launch_digest(p["fw"], p["kernel"], p["initrd"], CMDLINE)
        assert cli_out == library.hex, "CLI and library disagree"

        base = median_wall(baseline, runs)
        cli = median_wall([ours()], runs)
        lib_times = []
        for _ in range(runs):
            start = time.perf_counter()
            launch_digest(p["fw"], p["kernel"], p["initrd"], CMDLINE)
            lib_times.append(time.perf_counter() - start)
        lib = statistics.median(lib_times)
        sizes = {name: path.stat().st_size / MiB for name, path in p.items()}
        print(f"inputs: firmware {sizes['fw']:g} MiB + kernel {sizes['kernel']:g} MiB + initrd "
              f"{sizes['initrd']:g} MiB = {sum(sizes.values()):g} MiB (page-cached), {runs} runs, {exe}")
        print(f"openssl dgst -sm3 + sha256sum   {base * 1000:7.1f} ms  (baseline)")
        print(f"csvverify digest (process)      {cli * 1000:7.1f} ms  ({cli / base:.2f}x baseline)")
        print(f"launch_digest() in-process      {lib * 1000:7.1f} ms  ({lib / base:.2f}x baseline)")
        results["wall"] = cli / base <= WALL_TARGET
        print(f"target: process <= {WALL_TARGET}x baseline: {verdict(results['wall'])} ({cli / base:.2f}x)")

        tail, head = _area_tail(), bytearray(0x208)
        head[0x202:0x208] = b"HdrS\x0f\x02"
        def scaled(*sizes_mib):
            return [max(s // scale, 1) for s in sizes_mib]

        grow = scaled(64, 256, 1024)
        results["rss firmware"] = _rss_series(
            "csvverify digest as the firmware grows", scaled(4, 64, 256),
            lambda s: ours(_sparse(tmp / f"fw-{s}", s * MiB, tail=tail)))
        results["rss kernel"] = _rss_series(
            "csvverify digest as the kernel grows", scaled(16, 256, 1024),
            lambda s: ours(kernel=_sparse(tmp / f"kernel-{s}", s * MiB, head=bytes(head))))
        results["rss initrd"] = _rss_series(
            "csvverify digest as the initrd grows", grow,
            lambda s: ours(initrd=_sparse(tmp / f"initrd-{s}", s * MiB)))
        results["rss --match"] = _rss_series(
            "csvverify digest --match-measure (a mismatch: every variant) as the initrd grows", grow,
            lambda s: ours(initrd=_sparse(tmp / f"initrd-{s}", s * MiB), extra=("--match-measure", "00" * 32)),
            expect_exit=5)

    print("\nsummary:")
    for name, ok in results.items():
        print(f"  {name:<14} {verdict(ok)}")
    if args.quick:
        print("  (--quick: small inputs; run without --quick for the real measurement)")


if __name__ == "__main__":
    main()
