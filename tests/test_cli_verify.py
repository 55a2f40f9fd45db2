"""The verify and show commands through click, as a user runs them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from csvverify.cli import cli

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
TRUST = ["--hsk-cek", SAMPLES / "hsk_cek.cert", "--trust-root", SAMPLES / "test-root.cert"]


def test_real_vector_default_command(run_cli, real_dir):
    res = run_cli(real_dir / "report.cert", "--chain", "--hsk-cek", real_dir / "hsk_cek.cert")
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"OK: {real_dir / 'report.cert'}")
    assert "pass  report.mac" in res.output and "sealing-key-present" in res.output


def test_real_vector_json(run_cli, real_dir):
    res = run_cli("verify", real_dir / "report.cert", "--hsk", real_dir / "hsk.cert", "--cek", real_dir / "cek.cert",
                  "--json", "--expect-user-data", b"user data".hex())
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert doc["schema"] == "csvverify/verdicts/v1"
    v = doc["verdicts"][0]
    assert v["outcome"] == "pass" and v["exit_class"] == 0 and v["report"]["chip_id"] == "NZA9T14052605"
    assert {c["id"]: c["status"] for c in v["checks"]}["expect.user_data"] == "pass"
    assert v["trust"]["chain"] is True and "--hsk" in v["trust"]["collateral"]["hsk"]


def test_certs_dir_lookup(run_cli, tmp_path):
    (tmp_path / "FORGE0CHIP0001").mkdir()
    (tmp_path / "FORGE0CHIP0001" / "hsk_cek.cert").write_bytes((SAMPLES / "hsk_cek.cert").read_bytes())
    res = run_cli(SAMPLES / "v1-good.cert", "--certs", tmp_path, "--trust-root", SAMPLES / "test-root.cert", "--json")
    v = json.loads(res.stdout)["verdicts"][0]
    assert res.exit_code == 0 and "FORGE0CHIP0001/hsk_cek.cert (--certs)" in v["trust"]["collateral"]["hsk"]
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run_cli(SAMPLES / "v1-good.cert", "--certs", empty)
    assert res.exit_code == 4 and "hsk_cek?snumber=FORGE0CHIP0001" in res.output


def test_samples_behave_as_documented(run_cli):
    assert run_cli(SAMPLES / "v1-good.cert", *TRUST).exit_code == 0
    assert run_cli(SAMPLES / "v1-blanked.cert", *TRUST).exit_code == 0
    assert run_cli(SAMPLES / "v2-page.bin", *TRUST).exit_code == 0
    assert run_cli(SAMPLES / "v3-page.bin", *TRUST).exit_code == 0
    res = run_cli(SAMPLES / "v1-tampered.cert", *TRUST)
    assert res.exit_code == 3 and "FAIL  report.signature" in res.output
    res = run_cli(SAMPLES / "v1-good.cert", "--hsk-cek", SAMPLES / "hsk_cek.cert")
    assert res.exit_code == 3 and "FAIL  root.pinned" in res.output
    other = SAMPLES / "other-root"
    res = run_cli(other / "v1-good.cert", "--hsk-cek", other / "hsk_cek.cert", "--trust-root", SAMPLES / "test-root.cert")
    assert res.exit_code == 3 and "FAIL  root.pinned" in res.output


def test_worst_exit_class_wins(run_cli, tmp_path):
    garbage = tmp_path / "garbage.cert"
    garbage.write_bytes(b"\x01" * 77)
    res = run_cli("verify", SAMPLES / "v1-good.cert", garbage, "--no-chain", "-q")
    assert res.exit_code == 1
    assert res.output.count("OK: ") == 1 and f"FAIL: {garbage}" in res.output
    res = run_cli("verify", garbage, SAMPLES / "v1-tampered.cert", SAMPLES / "v1-good.cert", "-q")
    assert res.exit_code == 3
    res = run_cli("verify", SAMPLES / "v1-good.cert", "--expect-measure", "00" * 32, "-q")
    assert res.exit_code == 5


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"\x00" * 1000, "1000 bytes is not a report container"),
    (b"\xff" * 5000, "5000 bytes is not a report container"),
    (b"hello world", "neither hex nor valid base64"),
])
def test_bad_inputs_are_one_clear_line(run_cli, tmp_path, content, message):
    path = tmp_path / "bad.cert"
    path.write_bytes(content)
    res = run_cli(path, "--json")
    assert res.exit_code == 1
    v = json.loads(res.stdout)["verdicts"][0]
    assert v["outcome"] == "error" and message in v["checks"][0]["reason"]
    res = run_cli(path)
    assert "Traceback" not in res.output and message in res.output


def test_truncated_and_huge(run_cli, tmp_path):
    truncated = tmp_path / "truncated.cert"
    truncated.write_bytes((SAMPLES / "v1-good.cert").read_bytes()[:2000])
    huge = tmp_path / "huge.cert"
    huge.write_bytes(b"\0" * (10 * 1024 * 1024))
    res = run_cli(truncated, huge, "-q")
    assert res.exit_code == 1
    assert "2000 bytes is not a report container" in res.output and "far too large" in res.output


def test_usage_errors(run_cli, tmp_path):
    res = CliRunner_invoke(["verify", str(SAMPLES / "v1-good.cert"), "--no-chain", "--hsk-cek",
                            str(SAMPLES / "hsk_cek.cert")])
    assert res.exit_code == 2 and "--no-chain" in res.output
    res = CliRunner_invoke(["verify", str(SAMPLES / "v1-good.cert"), "--expect-mnonce", "abcd"])
    assert res.exit_code == 2 and "16 expected" in res.output
    res = CliRunner_invoke(["verify", str(SAMPLES / "v1-good.cert"), "--expect-user-data", "zz"])
    assert res.exit_code == 2 and "not hex" in res.output
    res = CliRunner_invoke(["verify", str(SAMPLES / "v1-good.cert"), "--hsk", str(SAMPLES / "hsk_cek.cert")])
    assert res.exit_code == 2 and "--hsk and --cek must be given together" in res.output  # a usage error


def test_bad_collateral_and_trust_root_files(run_cli, tmp_path):
    res = run_cli(SAMPLES / "v1-good.cert", "--hsk-cek", SAMPLES / "test-root.cert")
    assert res.exit_code == 4 and "832 bytes, but an hsk_cek.cert is exactly 2916 bytes" in res.output
    res = run_cli(SAMPLES / "v1-good.cert", "--hsk-cek", SAMPLES / "hsk_cek.cert", "--trust-root",
                  SAMPLES / "hsk_cek.cert")
    assert res.exit_code == 1 and "2916 bytes, but a root-style certificate" in res.output
    hsk_as_root = (SAMPLES / "hsk_cek.cert").read_bytes()[:832]
    (tmp_path / "hsk.cert").write_bytes(hsk_as_root)
    res = run_cli(SAMPLES / "v1-good.cert", "--trust-root", tmp_path / "hsk.cert")
    assert res.exit_code == 1 and "not usable as a trust root" in res.output


def test_error_messages_escape_control_characters(run_cli, tmp_path):
    bad = tmp_path / "root\x1b[2J\r.cert"  # a file name that would clear the terminal
    bad.write_bytes(b"x" * 10)
    res = run_cli(SAMPLES / "v1-good.cert", "--trust-root", bad)
    assert res.exit_code == 1 and "\x1b" not in res.output and "\r" not in res.output
    assert "root\\x1b[2J\\x0d.cert" in res.output


def test_expect_user_data_from_file(run_cli, tmp_path):
    f = tmp_path / "challenge.bin"
    f.write_bytes(b"sample user data")
    res = run_cli(SAMPLES / "v1-good.cert", *TRUST, "--expect-user-data", f"@{f}", "--json")
    checks = {c["id"]: c["status"] for c in json.loads(res.stdout)["verdicts"][0]["checks"]}
    assert res.exit_code == 0 and checks["expect.user_data"] == "pass"


def test_stdin_and_text_encodings(run_cli):
    raw = (SAMPLES / "v1-good.cert").read_bytes()
    res = CliRunner_invoke(["verify", "-", "--no-chain", "--json"], input=raw.hex().encode())
    v = json.loads(res.stdout)["verdicts"][0]
    assert res.exit_code == 0 and v["report"]["container"] == "hex text of raw V1 report"


def test_show_text_and_json(run_cli, real_dir):
    res = run_cli("show", real_dir / "report.cert")
    assert res.exit_code == 0
    assert "NZA9T14052605" in res.output and "0x1291429b" in res.output and "NODBG" in res.output
    assert "PRESENT" in res.output
    sealing_key = (real_dir / "report.cert").read_bytes()[2484:2516].hex()
    assert sealing_key not in res.output
    res = run_cli("show", real_dir / "report.cert", "--json")
    doc = json.loads(res.stdout)
    assert doc["report"]["measure"] == "1178dadbf826ec7a07444ba358376d81c312cb53d703f9da83b26c1eee2ea052"
    assert doc["report"]["pek"]["uid"] == "'HYGON-SSD-PEK'" and sealing_key not in res.stdout
    res = run_cli("show", SAMPLES / "v3-page.bin")
    assert "host_data" in res.output and "rtmr4" in res.output
    res = run_cli("show", SAMPLES / "test-root.cert")
    assert res.exit_code == 1 and "looks like an HRK/HSK certificate" in res.output


def test_every_command_has_help(run_cli):
    for name, command in cli.commands.items():
        assert command.help, name
        res = run_cli(name, "--help")
        assert res.exit_code == 0 and "Usage:" in res.output
    assert run_cli("--help").exit_code == 0


def test_python_dash_m_and_version():
    out = subprocess.run([sys.executable, "-m", "csvverify", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "verify" in out.stdout
    out = subprocess.run([sys.executable, "-m", "csvverify", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "csvverify, version" in out.stdout


def CliRunner_invoke(args, input=None):
    from click.testing import CliRunner

    return CliRunner().invoke(cli, args, input=input, catch_exceptions=False)


def test_zero_signature_and_off_curve_files(run_cli, tmp_path):
    good = bytearray((SAMPLES / "v1-good.cert").read_bytes())
    zero = bytearray(good)
    zero[192:336] = bytes(144)
    (tmp_path / "zero-sig.cert").write_bytes(zero)
    off = bytearray(good)
    off[336 + 20] ^= 0x01  # PEK qx (obfuscated in place; any change moves the point off the curve)
    (tmp_path / "off-curve.cert").write_bytes(off)
    res = run_cli(tmp_path / "zero-sig.cert", "-q")
    assert res.exit_code == 3 and "r is outside [1, n-1]" in res.output
    res = run_cli(tmp_path / "off-curve.cert", "-q")
    assert res.exit_code == 3 and "not a point on the SM2 curve" in res.output and "Traceback" not in res.output


def _no_control_characters(text: str) -> bool:
    return all(c == "\n" or 0x20 <= ord(c) < 0x7F or ord(c) > 0x9F for c in text)


def test_terminal_control_sequences_in_unsigned_fields_are_escaped(run_cli, tmp_path, forge):
    """The chip id is unsigned and a blanked sealing key skips the MAC, so this report verifies: its text
    must not be able to move the cursor or overwrite the OK/FAIL line of another input."""
    chip = "NZA9T14052605\x1b[1A\r\x1b[2KOK: other.cert"
    path = tmp_path / "inject.cert"
    path.write_bytes(forge.report(1, chip_id=chip, user_data=b"hi\x1b]0;title\x07\r", sealing_key=bytes(32)))
    for args in ([path], [path, "-q"], ["show", path], [path, "--chain", "--certs", tmp_path]):
        res = run_cli(*args)
        assert _no_control_characters(res.output), (args, res.output)
    res = run_cli(path)
    assert res.exit_code == 0 and "chip NZA9T14052605\\x1b[1A\\x0d\\x1b[2KOK: other.cert]" in res.output
    res = run_cli("show", path)
    assert "hi\\x1b]0;title\\x07\\x0d" in res.output
    res = run_cli(path, "--json")
    assert json.loads(res.stdout)["verdicts"][0]["report"]["chip_id"] == "NZA9T14052605\\x1b[1A\\x0d\\x1b[2KOK: other.cert"


def test_certificate_text_is_escaped(run_cli, tmp_path, forge):
    cek = bytearray(forge.cek_cert())
    cek[166:170] = b"\x1b[2K"
    (tmp_path / "cek.cert").write_bytes(cek)
    res = run_cli("certs", "show", tmp_path / "cek.cert")
    assert "'\\x1b[2K" in res.output and _no_control_characters(res.output)


def test_file_names_with_control_characters_are_escaped(run_cli, tmp_path):
    path = tmp_path / "a\x1b[2Kb.cert"
    path.write_bytes((SAMPLES / "v1-good.cert").read_bytes())
    res = run_cli(path, "-q")
    assert res.exit_code == 0 and "a\\x1b[2Kb.cert" in res.output and _no_control_characters(res.output)


@pytest.mark.parametrize("make, message", [
    pytest.param(lambda d: Path("/dev/zero"), "is a device or socket, not a regular file", id="dev-zero"),
    pytest.param(lambda d: (os.mkfifo(d / "fifo"), d / "fifo")[1], "is a FIFO, not a regular file", id="fifo"),
    pytest.param(lambda d: d, "is a directory, not a regular file", id="directory"),
    pytest.param(lambda d: (d / "big").write_bytes(b"x" * 65) and d / "big", "is larger than 64 bytes", id="65-bytes"),
    pytest.param(lambda d: (d / "empty").write_bytes(b"") or d / "empty", "is empty", id="empty"),
    pytest.param(lambda d: d / "absent", "cannot read", id="absent"),
])
def test_expect_user_data_file_is_small_and_regular(tmp_path, make, message):
    """In a child with 1 GiB of address space and a timeout: reading /dev/zero whole, or blocking on a FIFO,
    must fail this test, not the machine."""
    import resource

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    cmd = [sys.executable, "-m", "csvverify", "verify", str(SAMPLES / "v1-good.cert"),
           "--expect-user-data", f"@{make(tmp_path)}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, preexec_fn=limit_memory)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_expect_user_data_file_of_64_bytes(run_cli, tmp_path):
    (tmp_path / "u").write_bytes(b"sample user data".ljust(64, b"\0"))
    res = run_cli(SAMPLES / "v1-good.cert", "--expect-user-data", f"@{tmp_path / 'u'}", "--no-chain", "--json")
    checks = {c["id"]: c["status"] for c in json.loads(res.stdout)["verdicts"][0]["checks"]}
    assert checks["expect.user_data"] == "pass"


def test_measure_mismatch_late_in_the_value_is_visible(run_cli):
    measure = (SAMPLES / "v1-good.cert").read_bytes()
    from csvverify.report import parse_report

    actual = parse_report(measure).measure
    wrong = actual[:31] + bytes([actual[31] ^ 1])
    res = run_cli(SAMPLES / "v1-good.cert", "--expect-measure", wrong.hex(), "-q")
    assert res.exit_code == 5
    assert actual.hex() in res.output and wrong.hex() in res.output and "first difference at byte 31" in res.output


def test_garbage_of_report_size_is_named_in_quiet_output(run_cli, tmp_path):
    path = tmp_path / "zeros.cert"
    path.write_bytes(bytes(3380))
    res = run_cli(path, "-q")
    assert res.exit_code == 3 and res.output.splitlines()[0].endswith("(does not look like a CSV report)")
    res = run_cli(path)
    assert "warning not-a-report: does not look like a CSV report" in res.output
