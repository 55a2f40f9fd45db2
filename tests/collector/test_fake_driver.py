"""The whole guest flow of the dynamically linked ioctl tools against a stand-in driver.

fake_csv_guest.so (LD_PRELOAD) answers GET_REPORT with the real V1 report, whose MAC verifies with
the mnonce 67c6697351ff4aec29cdbaabf2fbe346; the tools must check the echo and the MAC, blank the
sealing key, and write report.cert and nonce.bin. The static tools take the same path inside a real
kernel in the csv-guest driver's QEMU test.
"""

import os
import stat

import pytest
from collector_support import run
from csvverify.forge import Forge
from csvverify.hashing import sm3

REAL_MNONCE = "67c6697351ff4aec29cdbaabf2fbe346"
USER_DATA = b"user data"
KEY = slice(2484, 2516)


@pytest.fixture
def driver(dynamic, fake_driver, real_dir, tmp_path):
    """Run a dynamic tool with the fake driver answering from `response` (default: the real report)."""
    device = tmp_path / "csv-guest"
    device.write_bytes(b"")
    request = tmp_path / "request.page"

    def invoke(tool, *args, response=None, flip=None, echo=False):
        env = dict(os.environ, LD_PRELOAD=str(fake_driver), FAKE_CSV_REQUEST_OUT=str(request),
                   FAKE_CSV_RESPONSE=str(response or real_dir / "report.cert"))
        if flip is not None:
            env["FAKE_CSV_FLIP"] = str(flip)
        if echo:
            env["FAKE_CSV_ECHO"] = "1"
        return run([dynamic / tool, "--device", device, *args], cwd=tmp_path, env=env)

    invoke.request = request
    return invoke


def test_collects_checks_and_blanks(driver, real_dir, tmp_path):
    result = driver("ioctl-get-attestation", "--mnonce", REAL_MNONCE, "--user-data", USER_DATA.hex(),
                    "--out", "r.cert", "--nonce-out", "n.bin")
    assert result.returncode == 0, result.stderr
    assert "mnonce echo and MAC checked, sealing-key field blanked" in result.stdout

    request = driver.request.read_bytes()
    assert request[:64] == USER_DATA.ljust(64, b"\0")
    assert request[64:80] == bytes.fromhex(REAL_MNONCE)
    assert request[80:112] == sm3(request[:80])
    assert request[112:] == bytes(4096 - 112)

    real = (real_dir / "report.cert").read_bytes()
    saved = (tmp_path / "r.cert").read_bytes()
    assert len(saved) == 2548
    assert saved[KEY] == bytes(32), "the sealing key must never reach report.cert"
    assert saved[:KEY.start] == real[:KEY.start] and saved[KEY.stop:] == real[KEY.stop:]
    assert (tmp_path / "n.bin").read_bytes() == bytes.fromhex(REAL_MNONCE)
    assert stat.S_IMODE((tmp_path / "r.cert").stat().st_mode) == 0o644


def test_collected_report_verifies(driver, collector, real_dir, tmp_path):
    assert driver("ioctl-get-attestation", "--mnonce", REAL_MNONCE).returncode == 0
    result = run([collector / "verify-attestation", tmp_path / "report.cert", "--chain", "--hsk-cek",
                  real_dir / "hsk_cek.cert", "--expect-mnonce", f"@{tmp_path / 'nonce.bin'}",
                  "--expect-user-data", USER_DATA.hex()])
    assert result.returncode == 0, result.stdout
    assert "SKIP  report.mac" in result.stdout and "blanked" in result.stdout
    assert "sealing_key" not in result.stdout


def test_random_mnonce_by_default(driver):
    # The fake answers with the real report, so a fresh random mnonce is not echoed: refused.
    result = driver("ioctl-get-attestation")
    assert result.returncode == 1
    assert "does not echo the mnonce" in result.stderr
    first = driver.request.read_bytes()[64:80]
    driver("ioctl-get-attestation")
    second = driver.request.read_bytes()[64:80]
    assert first != bytes.fromhex(REAL_MNONCE) and any(first) and first != second


@pytest.mark.parametrize("flip", [128, 336, 2430, 2500, 2530])
def test_damaged_answers_are_refused(driver, tmp_path, flip):
    result = driver("ioctl-get-attestation", "--mnonce", REAL_MNONCE, flip=flip)
    assert result.returncode == 1
    expected = "does not echo the mnonce" if flip == 128 else "MAC does not match"
    assert expected in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "report.cert").exists() and not (tmp_path / "nonce.bin").exists()


def test_extended_request_and_v1_answer(driver, tmp_path):
    result = driver("ioctl-get-attestation", "--mnonce", REAL_MNONCE, "--extended", "v3")
    assert result.returncode == 0, result.stderr
    request = driver.request.read_bytes()
    assert request[112:128] == b"ATTESTATION_EXT\0"
    assert int.from_bytes(request[128:132], "little") == 3
    assert "driver returned V1" in result.stdout
    assert len((tmp_path / "report.cert").read_bytes()) == 2548


def test_extended_answer_is_saved_as_a_page(driver, tmp_path, collector):
    f = Forge()
    mnonce = bytes.fromhex(REAL_MNONCE)
    answer = tmp_path / "v2.answer"
    answer.write_bytes(f.report(version=2, mnonce=mnonce, user_data=USER_DATA, page=True))
    result = driver("ioctl-get-attestation", "--mnonce", REAL_MNONCE, "--extended", "v2", "--user-data",
                    USER_DATA.hex(), response=answer)
    assert result.returncode == 0, result.stderr
    saved = (tmp_path / "report.cert").read_bytes()
    assert len(saved) == 4096 and saved[3316:3348] == bytes(32)
    root = tmp_path / "forge-root.cert"
    root.write_bytes(f.root_cert)
    certs = tmp_path / "forge-hsk-cek.cert"
    certs.write_bytes(f.hsk_cek())
    verdict = run([collector / "verify-attestation", tmp_path / "report.cert", "--hsk-cek", certs,
                   "--trust-root", root, "--expect-mnonce", REAL_MNONCE])
    assert verdict.returncode == 0, verdict.stdout
    assert "V2/V3 report" in verdict.stdout and "EXPLICIT trust root" in verdict.stdout


def test_random_mnonce_answered_like_firmware(driver, tmp_path):
    result = driver("ioctl-get-attestation", echo=True)
    assert result.returncode == 0, result.stderr
    sent = driver.request.read_bytes()[64:80]
    assert (tmp_path / "nonce.bin").read_bytes() == sent
    assert (tmp_path / "report.cert").read_bytes()[KEY] == bytes(32)


def test_sealing_key_hex_on_stdout_only(driver, real_dir, tmp_path):
    key = (real_dir / "report.cert").read_bytes()[KEY]
    result = driver("ioctl-get-key", echo=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == key.hex() + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["csv-guest", "request.page"], "no file may be written"


def test_sealing_key_file_mode_0600(driver, real_dir, tmp_path):
    key = (real_dir / "report.cert").read_bytes()[KEY]
    keyfile = tmp_path / "sealing.key"
    keyfile.write_bytes(b"an older, longer and world-readable file")
    keyfile.chmod(0o644)
    result = driver("ioctl-get-key", "--out", keyfile, echo=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and key.hex() not in result.stderr
    assert keyfile.read_bytes() == key
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600


def test_sealing_key_refused_on_bad_mac(driver, tmp_path):
    result = driver("ioctl-get-key", echo=True, flip=2490)
    assert result.returncode == 1 and "MAC does not match" in result.stderr
    assert result.stdout == ""
