"""The static tools outside a CSV guest: one clear line and a non-zero exit, never a crash."""

import os
import shutil
from pathlib import Path

import pytest
from collector_support import run

NO_DEVICE = "/nonexistent/csv-guest"


def _one_line_error(result, tool: str) -> str:
    assert result.returncode > 0, f"{tool} died from a signal or succeeded: {result.returncode}"
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"{tool} printed {len(lines)} lines: {result.stderr!r}"
    assert lines[0].startswith(f"{tool}: error: ")
    assert result.stdout == ""
    return lines[0]


def _on_csv_guest() -> bool:
    return Path("/dev/csv-guest").exists()


@pytest.mark.parametrize("tool", ["ioctl-get-attestation", "ioctl-get-key"])
def test_ioctl_tools_without_device(collector, tmp_path, tool):
    result = run([collector / tool, "--device", NO_DEVICE], cwd=tmp_path)
    line = _one_line_error(result, tool)
    assert NO_DEVICE in line and "csv-guest driver" in line and "-v /dev/csv-guest:/dev/csv-guest" in line
    assert list(tmp_path.iterdir()) == [], "nothing may be written on failure"


@pytest.mark.parametrize("tool", ["ioctl-get-attestation", "ioctl-get-key"])
def test_ioctl_tools_on_a_file_that_is_not_the_driver(collector, tmp_path, tool):
    fake = tmp_path / "not-a-device"
    fake.write_bytes(b"")
    line = _one_line_error(run([collector / tool, "--device", fake], cwd=tmp_path), tool)
    assert "ENOTTY" in line and "not the csv-guest driver" in line


@pytest.mark.skipif(_on_csv_guest(), reason="this machine is a CSV guest")
@pytest.mark.skipif(os.geteuid() != 0, reason="as non-root the pagemap explanation comes first (tested below)")
@pytest.mark.parametrize("tool", ["get-attestation", "get-key"])
def test_vmmcall_tools_outside_a_csv_guest(collector, tmp_path, tool):
    result = run([collector / tool], cwd=tmp_path)
    line = _one_line_error(result, tool)
    assert "not a CSV guest" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("tool", ["get-attestation", "get-key"])
def test_vmmcall_tools_explain_missing_privilege(collector, world_dir, tool):
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (util-linux) to run the tool as uid 65534")
    binary = world_dir / tool
    shutil.copy2(collector / tool, binary)
    result = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", binary], cwd=world_dir)
    line = _one_line_error(result, tool)
    assert "frame number 0" in line and "CAP_SYS_ADMIN" in line and "ioctl-get-attestation" in line


def test_hypercall_number_is_checked(collector, tmp_path):
    result = run([collector / "get-attestation", "--hc", "7"], cwd=tmp_path)
    assert result.returncode == 2 and "--hc: expected 100" in result.stderr
    env = dict(os.environ, KVM_HC_VM_ATTESTATION="abc")
    result = run([collector / "get-key"], cwd=tmp_path, env=env)
    assert result.returncode == 2 and "--hc" in result.stderr


@pytest.mark.parametrize("tool, args, message", [
    ("ioctl-get-attestation", ["--mnonce", "00"], "--mnonce: expected 32 hex digits"),
    ("ioctl-get-attestation", ["--user-data", "zz"], "--user-data: expected at most 64 bytes"),
    ("ioctl-get-attestation", ["--user-data", "00" * 65], "--user-data: expected at most 64 bytes"),
    ("ioctl-get-attestation", ["--user-data", "00", "--user-data-file", "x"], "give user data once"),
    ("ioctl-get-attestation", ["--extended", "v4"], "--extended: expected v2 or v3"),
    ("ioctl-get-attestation", ["stray"], "unexpected argument"),
    ("get-attestation", ["--extended", "v2"], "does not apply to get-attestation"),
    ("get-attestation", ["--device", "/dev/x"], "does not apply"),
    ("ioctl-get-key", ["--user-data", "00"], "does not apply"),
    ("get-key", ["--bogus"], "unknown option"),
    ("verify-attestation", [], "give one report file"),
    ("verify-attestation", ["a", "--hsk-cek", "x", "--hsk", "y", "--cek", "z"], "not both"),
    ("verify-attestation", ["a", "--hsk", "y"], "--hsk and --cek go together"),
])
def test_usage_errors_exit_2(collector, tmp_path, tool, args, message):
    result = run([collector / tool, *args], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "usage:" in result.stderr


def test_user_data_file_too_large(collector, tmp_path):
    big = tmp_path / "big"
    big.write_bytes(b"x" * 65)
    result = run([collector / "ioctl-get-attestation", "--user-data-file", big, "--device", NO_DEVICE], cwd=tmp_path)
    line = _one_line_error(result, "ioctl-get-attestation")
    assert f"--user-data-file: {big} is larger than 64 bytes" in line
    assert result.returncode == 1


def test_expect_file_too_large_names_the_limit(collector, real_dir, tmp_path):
    big = tmp_path / "mnonce.bin"
    big.write_bytes(b"x" * 17)
    result = run([collector / "verify-attestation", real_dir / "report.cert", "--expect-mnonce", f"@{big}"])
    line = _one_line_error(result, "verify-attestation")
    assert f"--expect-mnonce: {big} is larger than 16 bytes" in line


def test_help_exits_0(collector):
    for tool in ("get-attestation", "ioctl-get-attestation", "get-key", "ioctl-get-key", "verify-attestation"):
        result = run([collector / tool, "--help"])
        assert result.returncode == 0 and result.stdout.startswith(f"usage: {tool}")


@pytest.mark.parametrize("content, message", [
    (None, "No such file"),
    (b"x" * 100, "100 bytes is not a raw report"),
    (b"x" * 5000, "larger than a 4096-byte page"),
    ("dir", "is a directory"),
])
def test_verify_unreadable_report_is_class_1(collector, tmp_path, content, message):
    path = tmp_path / "report.cert"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    line = _one_line_error(run([collector / "verify-attestation", path]), "verify-attestation")
    assert message in line
    assert run([collector / "verify-attestation", path]).returncode == 1


def test_verify_missing_collateral_is_class_4(collector, real_dir, tmp_path):
    report = real_dir / "report.cert"
    result = run([collector / "verify-attestation", report, "--hsk-cek", tmp_path / "absent"])
    assert result.returncode == 4 and "--hsk-cek: cannot read" in result.stderr
    short = tmp_path / "short"
    short.write_bytes(b"\0" * 100)
    result = run([collector / "verify-attestation", report, "--hsk", short, "--cek", short])
    assert result.returncode == 4 and "is not a 832-byte certificate" in result.stderr
    result = run([collector / "verify-attestation", report, "--chain"])
    assert result.returncode == 4
    assert "cert.hygon.cn/hsk_cek?snumber=NZA9T14052605" in result.stdout


def test_verify_bad_trust_root_is_class_1(collector, real_dir, tmp_path):
    root = tmp_path / "root.cert"
    root.write_bytes((real_dir / "hrk.cert").read_bytes()[:-1] + b"\x01")  # outside the signature, but 832 bytes
    ok = run([collector / "verify-attestation", real_dir / "report.cert", "--trust-root", root])
    assert ok.returncode == 0, ok.stdout + ok.stderr  # reserved tail bytes are not signed
    broken = bytearray((real_dir / "hrk.cert").read_bytes())
    broken[600] ^= 1
    root.write_bytes(bytes(broken))
    result = run([collector / "verify-attestation", real_dir / "report.cert", "--trust-root", root])
    assert result.returncode == 1
    assert "not usable as a trust root" in result.stderr


def test_verify_oversized_trust_root_says_larger(collector, real_dir, tmp_path):
    root = tmp_path / "root.cert"
    root.write_bytes((real_dir / "hrk.cert").read_bytes() + b"\0")
    result = run([collector / "verify-attestation", real_dir / "report.cert", "--trust-root", root])
    line = _one_line_error(result, "verify-attestation")
    assert result.returncode == 1
    assert "larger than 832 bytes" in line and "not 0 bytes" not in line
