"""Build the csv-guest module, a busybox initramfs and boot it under QEMU TCG (no KVM needed).

The machinery behind test_csv_guest_vm.py: it finds a Debian kernel image with matching headers, builds
the module (normal and test builds) and the static guest tools in temporary copies of their sources, packs
the initramfs itself (newc cpio) and collects what the guest writes to its second serial port.
"""

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODULE_SRC = REPO / "kernel" / "csv-guest"
PROBE_SRC = REPO / "kernel" / "tests"
COLLECTOR_SRC = REPO / "collector"
GUEST_INIT = Path(__file__).with_name("guest_init.sh")
BUSYBOX = Path("/bin/busybox")
QEMU = "qemu-system-x86_64"
BUILD_ARTEFACTS = shutil.ignore_patterns("*.o", "*.ko", "*.mod", "*.mod.c", ".*.cmd", "modules.order",
                                         "Module.symvers", "build", "csv-guest-probe")

APT_HINT = "apt-get install -y linux-image-amd64 linux-headers-amd64 build-essential"


@dataclass
class DebianKernel:
    version: str
    image: Path  # /boot/vmlinuz-<version>
    build_dir: Path  # /lib/modules/<version>/build (the matching headers)


def _version_key(version: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"[.-]", version)]


def find_kernel() -> DebianKernel | str:
    """The newest /boot/vmlinuz-* whose headers are installed, or the reason there is none."""
    images = sorted(Path("/boot").glob("vmlinuz-*"), key=lambda p: _version_key(p.name[len("vmlinuz-"):]))
    if not images:
        return f"no kernel image in /boot ({APT_HINT})"
    for image in reversed(images):
        version = image.name[len("vmlinuz-"):]
        build = Path("/lib/modules") / version / "build"
        if (build / "Makefile").exists():
            if not os.access(image, os.R_OK):
                return f"{image} is not readable by this user: run the kernel tests as root"
            return DebianKernel(version, image, build)
    return f"no headers match the kernel images in /boot ({', '.join(p.name for p in images)}): " + APT_HINT


def _first_missing(needs: dict[str, str]) -> str | None:
    for tool, package in needs.items():
        if shutil.which(tool) is None:
            return f"{tool} not found: apt-get install -y {package}"
    return None


def missing_build_tool() -> str | None:
    """A skip reason naming the first missing tool for building the module, or None."""
    return _first_missing({"make": "build-essential", "gcc": "build-essential", "nm": "binutils (build-essential)",
                           "readelf": "binutils (build-essential)", "modinfo": "kmod"})


def missing_vm_tool() -> str | None:
    """A skip reason naming the first missing piece for booting the test VM, or None."""
    reason = _first_missing({QEMU: "qemu-system-x86"})
    if reason:
        return reason
    if not BUSYBOX.exists() or not is_static(BUSYBOX):
        return f"{BUSYBOX} is missing or not static: apt-get install -y busybox-static"
    if not Path("/usr/include/openssl/evp.h").exists():
        return "OpenSSL headers not found (the collector needs them): apt-get install -y libssl-dev"
    return None


def is_static(path: Path) -> bool:
    """An ELF executable without a program interpreter (PT_INTERP) is statically linked."""
    out = subprocess.run(["readelf", "-l", str(path)], capture_output=True, text=True)
    return out.returncode == 0 and "INTERP" not in out.stdout


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{log}")
    return log


@dataclass
class ModuleBuild:
    ko: Path
    log: str


def build_module(dest: Path, kernel: DebianKernel, test_backend: bool) -> ModuleBuild:
    """Build csv-guest.ko out of tree in a copy of kernel/csv-guest (so the checkout stays clean)."""
    shutil.copytree(MODULE_SRC, dest, ignore=BUILD_ARTEFACTS)
    cmd = ["make", "-C", str(dest), f"KDIR={kernel.build_dir}"] + (["TEST_BACKEND=1"] if test_backend else [])
    log = _run(cmd, "building csv-guest.ko" + (" (TEST_BACKEND=1)" if test_backend else ""))
    return ModuleBuild(dest / "csv-guest.ko", log)


def kbuild_warnings(log: str) -> list[str]:
    """Warning and error lines of a kbuild log (the BTF note for out-of-tree modules is harmless)."""
    return [line for line in log.splitlines()
            if re.search(r"warning|error", line, re.I) and not line.startswith("Skipping BTF generation")]


def build_probe(out_dir: Path) -> Path:
    _run(["make", "-C", str(PROBE_SRC), f"OUT={out_dir}"], "building csv-guest-probe")
    return out_dir / "csv-guest-probe"


def build_collector(dest: Path) -> Path:
    """The static ioctl-get-attestation, built by collector/Makefile in a copy of collector/."""
    shutil.copytree(COLLECTOR_SRC, dest, ignore=shutil.ignore_patterns("build", "get-attestation", "get-key",
                                                                        "ioctl-get-attestation", "ioctl-get-key",
                                                                        "verify-attestation"))
    _run(["make", "-C", str(dest), "ioctl-get-attestation"], "building the collector's ioctl-get-attestation")
    return dest / "ioctl-get-attestation"


def module_symbols(ko: Path) -> list[str]:
    out = _run(["nm", str(ko)], f"nm {ko.name}")
    return [line.split()[-1] for line in out.splitlines() if line.strip()]


def module_parameters(ko: Path) -> list[str]:
    out = _run(["modinfo", "-F", "parm", str(ko)], f"modinfo {ko.name}")
    return [line.split(":", 1)[0] for line in out.splitlines() if line.strip()]


# -- initramfs (newc cpio, written here so no cpio binary is needed) -----------------------------------

def _cpio_entry(name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0), ino: int = 0) -> bytes:
    name_b = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0]
    header = b"070701" + b"".join(b"%08x" % f for f in fields)
    pad = lambda n: b"\0" * (-n % 4)  # noqa: E731
    return header + name_b + pad(len(header) + len(name_b)) + data + pad(len(data))


def write_initramfs(path: Path, files: dict[str, bytes | Path], executables: set[str]) -> Path:
    """An uncompressed newc archive: /dev/console, the parent directories and the given files."""
    dirs = {"dev", "proc", "sys", "tmp", "bin"}
    for name in files:
        parts = name.split("/")[:-1]
        dirs.update("/".join(parts[:i + 1]) for i in range(len(parts)))
    entries = [_cpio_entry(d, 0o40755, ino=i + 1) for i, d in enumerate(sorted(dirs))]
    entries.append(_cpio_entry("dev/console", 0o20600, rdev=(5, 1), ino=len(entries) + 1))
    for name, content in sorted(files.items()):
        data = content.read_bytes() if isinstance(content, Path) else content
        mode = 0o100755 if name in executables else 0o100644
        entries.append(_cpio_entry(name, mode, data, ino=len(entries) + 1))
    entries.append(_cpio_entry("TRAILER!!!", 0))
    path.write_bytes(b"".join(entries))
    return path


# -- boot --------------------------------------------------------------------------------------------

@dataclass
class GuestRun:
    console: str  # ttyS0: the kernel console
    data: str  # ttyS1: what guest_init.sh reports
    seconds: float
    exit_code: int | None


def boot(kernel: DebianKernel, initramfs: Path, workdir: Path, timeout: float = 150) -> GuestRun:
    console, data = workdir / "console.log", workdir / "data.log"
    cmd = [QEMU, "-accel", "tcg", "-cpu", "max", "-m", "512", "-smp", "1", "-nodefaults", "-display", "none",
           "-no-reboot", "-serial", f"file:{console}", "-serial", f"file:{data}",
           "-kernel", str(kernel.image), "-initrd", str(initramfs),
           "-append", "console=ttyS0 loglevel=4 panic=-1 rdinit=/init"]
    start = time.monotonic()
    try:
        exit_code = subprocess.run(cmd, capture_output=True, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        exit_code = None
    seconds = time.monotonic() - start
    read = lambda p: p.read_text(errors="replace").replace("\r", "") if p.exists() else ""  # noqa: E731
    return GuestRun(read(console), read(data), seconds, exit_code)


# -- what the guest reported ---------------------------------------------------------------------------

@dataclass
class Case:
    errno: int
    match: bool | None  # for round trips: the page equals the firmware's report
    request: bool | None = None  # for round trips: the fake firmware received exactly the request


@dataclass
class GuestResults:
    loads: dict[str, int] = field(default_factory=dict)  # name -> finit_module() errno (0: loaded)
    load_logs: dict[str, list[str]] = field(default_factory=dict)  # name -> kernel lines of that load
    device_mode: str = ""
    collects: dict[str, int] = field(default_factory=dict)  # name -> ioctl-get-attestation exit code
    collect_output: dict[str, list[str]] = field(default_factory=dict)
    last_flags: dict[str, int] = field(default_factory=dict)
    reports: dict[str, str] = field(default_factory=dict)  # name -> base64 text
    cases: dict[str, Case] = field(default_factory=dict)
    unload: tuple[int, str] | None = None
    dmesg: list[str] = field(default_factory=list)  # kernel lines after the last load
    done: bool = False

    @property
    def kernel_log(self) -> list[str]:
        return [line for lines in self.load_logs.values() for line in lines] + self.dmesg


def driver_messages(kernel_lines: list[str]) -> list[str]:
    """The driver's own messages (prefix "csv-guest: "), without timestamp and prefix."""
    messages = (line.split("] ", 1)[-1] for line in kernel_lines)
    return [m[len("csv-guest: "):] for m in messages if m.startswith("csv-guest: ")]


def parse_results(data: str) -> GuestResults:
    res = GuestResults()
    block: str | None = None
    lines: list[str] = []
    for line in data.splitlines():
        if block is not None:
            if line == f"END {block}":
                if block == "dmesg":
                    res.dmesg = lines
                else:
                    res.reports[block.removesuffix(".cert")] = "".join(lines)
                block = None
            else:
                lines.append(line)
            continue
        if line.startswith("BEGIN "):
            block, lines = line[len("BEGIN "):], []
        elif m := re.match(r"LOAD (\S+) rc=(\d+)", line):
            res.loads[m[1]] = int(m[2])
        elif m := re.match(r"LOADLOG (\S+) (.*)", line):
            res.load_logs.setdefault(m[1], []).append(m[2])
        elif line.startswith("DEVICE "):
            res.device_mode = line[len("DEVICE "):]
        elif m := re.match(r"COLLECT (\S+) rc=(\d+)", line):
            res.collects[m[1]] = int(m[2])
        elif m := re.match(r"COLLECT-OUT (\S+) (.*)", line):
            res.collect_output.setdefault(m[1], []).append(m[2])
        elif m := re.match(r"LASTFLAGS (\S+) (-?\d+)", line):
            res.last_flags[m[1]] = int(m[2])
        elif m := re.match(r"CASE (\S+) errno=(\d+) \S+(?: match=([01]))?(?: request=([01]))?", line):
            res.cases[m[1]] = Case(int(m[2]), None if m[3] is None else m[3] == "1",
                                   None if m[4] is None else m[4] == "1")
        elif m := re.match(r"UNLOAD rc=(\d+) ?(.*)", line):
            res.unload = (int(m[1]), m[2])
        elif line == "GUEST done":
            res.done = True
    return res
