"""Launch digest speed and memory: `csvverify digest` on generated 4 MB firmware + 12 MB kernel + 64 MB initrd.

    python tests/bench/bench_digest.py

Baseline measured in the same run on the same (cached) files: `openssl dgst -sm3` on the firmware plus
`sha256sum` on kernel and initrd, the minimum any tool must hash. Prints the median wall times and the
ratio (target <= 1.2x), then the peak RSS of `csvverify digest` as the initrd grows from 64 MiB to
1 GiB (target: flat).
"""

import os
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 7
MiB = 1 << 20


def _inputs(folder: Path) -> dict:
    from csvverify.digest import ovmf

    rng = random.Random(6)
    tail = ovmf.encode_footer_table([(ovmf.HASH_TABLE_AREA_GUID, struct.pack("<II", 0x810C00, 0x400))])
    kernel = bytearray(rng.randbytes(12 * MiB))
    kernel[0x202:0x208] = b"HdrS\x0f\x02"
    files = {"fw": (rng.randbytes(4 * MiB - len(tail)) + tail), "kernel": bytes(kernel),
             "initrd": rng.randbytes(64 * MiB)}
    paths = {}
    for name, data in files.items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    return paths


def _wall(commands) -> float:
    """Median wall time of running ``commands`` one after another."""
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        for cmd in commands:
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# A forked child starts with its parent's resident pages, so ru_maxrss of a child of this (large) process
# would report our own size. A small launcher process runs the command and reports its child's peak.
_LAUNCHER = ("import os, subprocess, sys\n"
             "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
             "_, status, usage = os.wait4(p.pid, 0)\n"
             "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)\n")


def _peak_rss_mib(cmd) -> float:
    out = subprocess.run([sys.executable, "-c", _LAUNCHER, *map(str, cmd)], check=True, capture_output=True,
                         text=True).stdout.split()
    assert out[0] == "0", f"{cmd} exited {out[0]}"
    return int(out[1]) / 1024


def main():
    from csvverify.digest import launch_digest

    exe = shutil.which("csvverify") or str(Path(sys.executable).with_name("csvverify"))
    for tool in ("openssl", "sha256sum"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed for the baseline")
    with tempfile.TemporaryDirectory() as tmp:
        p = _inputs(Path(tmp))
        ours = [exe, "digest", "--ovmf", p["fw"], "--kernel", p["kernel"], "--initrd", p["initrd"],
                "--cmdline", "console=ttyS0"]
        baseline = [["openssl", "dgst", "-sm3", p["fw"]], ["sha256sum", p["kernel"], p["initrd"]]]
        cli_out = subprocess.run(ours, check=True, capture_output=True, text=True).stdout.strip()
        library = launch_digest(p["fw"], p["kernel"], p["initrd"], "console=ttyS0")
        assert cli_out == library.hex, "CLI and library disagree"

        base = _wall(baseline)
        cli = _wall([ours])
        lib_times = []
        for _ in range(RUNS):
            start = time.perf_counter()
            launch_digest(p["fw"], p["kernel"], p["initrd"], "console=ttyS0")
            lib_times.append(time.perf_counter() - start)
        lib = statistics.median(lib_times)
        total = sum(path.stat().st_size for path in p.values()) / MiB
        print(f"inputs: firmware 4 MiB + kernel 12 MiB + initrd 64 MiB = {total:.0f} MiB (page-cached)")
        print(f"openssl dgst -sm3 + sha256sum   {base * 1000:7.1f} ms  (baseline)")
        print(f"csvverify digest (process)      {cli * 1000:7.1f} ms  ({cli / base:.2f}x baseline)")
        print(f"launch_digest() in-process      {lib * 1000:7.1f} ms  ({lib / base:.2f}x baseline)")
        print(f"target: process <= 1.2x baseline: {'met' if cli / base <= 1.2 else 'NOT met'} ({cli / base:.2f}x)")

        print("\npeak RSS of csvverify digest as the initrd grows (sparse files):")
        rss = []
        for size in (64, 256, 1024):
            big = Path(tmp) / f"initrd-{size}"
            with open(big, "wb") as f:
                f.truncate(size * MiB)
            rss.append(_peak_rss_mib([*ours[:6], "--initrd", big]))
            print(f"  initrd {size:5d} MiB   peak RSS {rss[-1]:6.1f} MiB")
        growth = rss[-1] - rss[0]
        print(f"growth from 64 MiB to 1 GiB of input: {growth:+.1f} MiB "
              f"({'flat' if abs(growth) < 4 else 'NOT flat'})")


if __name__ == "__main__":
    main()
