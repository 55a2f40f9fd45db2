"""The `csvverify digest` command: outputs, --explain, --match, --emit-policy and bad input."""

import hashlib
import io
import json
import os
import struct
import sys
import tomllib

import pytest
from click.testing import CliRunner

from csvverify import cli as cli_module
from csvverify.cli import cli
from csvverify.digest import ovmf
from csvverify.forge import Forge
from csvverify.hashing import sm3

VECTOR_B7 = {"sm3": "d0e953abddb05c29698a9c3b7c19e0c0d5da98fc2782d1a2a2db77591700586a",
             "base64": "0OlTq92wXClpipw7fBngwNXamPwngtGiott3WRcAWGo=",
             "sha256": "1fb3c1b7bad3eaadda601aa109c52d66ce41eba12e9b23d9cd31f536da633658"}
B7_CMDLINE = "console=ttyS0 root=/dev/vda1 rw"


def run(*args):
    return CliRunner().invoke(cli, ["digest", *map(str, args)])


def assert_one_line_error(result, *fragments):
    assert result.exit_code not in (0, None), result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    first = result.stderr.splitlines()[0]
    assert first.startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in first, first


@pytest.fixture
def files(tmp_path):
    """A synthetic firmware (with a kernel-hashes area), a bzImage-like kernel and an initrd."""
    tail = ovmf.encode_footer_table([(ovmf.HASH_TABLE_AREA_GUID, struct.pack("<II", 0x810C00, 0x400))])
    kernel = bytearray(hashlib.shake_256(b"k").digest(8192))
    kernel[0x202:0x208] = b"HdrS\x0f\x02"
    paths = {"fw": tmp_path / "OVMF.fd", "kernel": tmp_path / "vmlinuz", "initrd": tmp_path / "initrd.img"}
    paths["fw"].write_bytes(b"\x90" * (0x10000 - len(tail)) + tail)
    paths["kernel"].write_bytes(bytes(kernel))
    paths["initrd"].write_bytes(b"initrd" * 100)
    return paths


def full(files, *extra):
    return ["--ovmf", files["fw"], "--kernel", files["kernel"], "--initrd", files["initrd"], *extra]


# -- vectors through the command line ------------------------------------------------------------------

def b7(digest_dir, *extra):
    return run("--ovmf", digest_dir / "ovmf_AmdSev_suffix.bin", "--kernel", digest_dir / "synth_kernel.bin",
               "--initrd", digest_dir / "synth_initrd.bin", "--cmdline", B7_CMDLINE, *extra)


def test_vector_hex_base64_and_sha256(digest_dir):
    assert b7(digest_dir).stdout == VECTOR_B7["sm3"] + "\n"
    assert b7(digest_dir, "--format", "base64").stdout == VECTOR_B7["base64"] + "\n"
    assert b7(digest_dir, "--algorithm", "sha256").stdout == VECTOR_B7["sha256"] + "\n"
    firmware_only = run("--ovmf", digest_dir / "ovmf_AmdSev_suffix.bin")
    assert firmware_only.exit_code == 0
    assert firmware_only.stdout.strip() == "2605a0b2bb244c44d29196483896112281166c46c00f04e008ed3b9659c24ace"


def test_vector_a4_error_through_the_cli(digest_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    result = run("--ovmf", digest_dir / "ovmf_OvmfX64_suffix.bin", "--kernel", empty, "--initrd", empty,
                 "--cmdline", "")
    assert result.exit_code == 1
    assert_one_line_error(result, "hashes table area is invalid (base=0x0 size=0x0)")


def test_json_holds_digest_components_and_table(digest_dir):
    result = b7(digest_dir, "--format", "json")
    doc = json.loads(result.stdout)
    assert doc["schema"] == "csvverify/digest/v1"
    assert doc["digest"] == {"hex": VECTOR_B7["sm3"], "base64": VECTOR_B7["base64"]}
    assert doc["kernel_hashes"] is True and len(bytes.fromhex(doc["hash_table"]["hex"])) == 176
    assert doc["firmware"]["ovmf_table"]["hash_table_area"] == {"base": 0x810C00, "size": 0x400}
    assert doc["kernel"]["type"] == "bzImage" and doc["kernel"]["boot_protocol"] == "2.15"
    assert doc["cmdline"]["text"] == B7_CMDLINE
    assert doc["cmdline"]["sha256_with_nul"] == hashlib.sha256(B7_CMDLINE.encode() + b"\0").hexdigest()


def test_explain_shows_component_hashes_and_table_fields(digest_dir):
    out = b7(digest_dir, "--explain").stdout
    table = json.loads(b7(digest_dir, "--format", "json").stdout)["hash_table"]
    assert table["hex"] in out
    for field in table["fields"]:
        assert f"+{field['offset']:03d}  {field['hex']}" in out
    assert hashlib.sha256((digest_dir / "synth_kernel.bin").read_bytes()).hexdigest() in out
    assert out.rstrip().endswith(VECTOR_B7["sm3"])


# -- options -------------------------------------------------------------------------------------------

def test_cmdline_file_is_verbatim_and_warns_about_a_trailing_newline(files, tmp_path):
    (tmp_path / "cmdline").write_bytes(b"console=ttyS0\n")
    from_file = run(*full(files, "--cmdline-file", tmp_path / "cmdline"))
    assert "warning: the cmdline ends with a newline" in from_file.stderr
    assert from_file.stdout == run(*full(files, "--cmdline", "console=ttyS0\n")).stdout
    assert from_file.stdout != run(*full(files, "--cmdline", "console=ttyS0")).stdout
    assert run(*full(files, "--append", "console=ttyS0")).stdout == run(*full(files, "--cmdline", "console=ttyS0")).stdout


def test_no_kernel_hashes_gives_the_firmware_hash(files):
    result = run(*full(files, "--cmdline", "x", "--no-kernel-hashes"))
    assert result.exit_code == 0 and result.stdout.strip() == sm3(files["fw"].read_bytes()).hex()


def test_vmsa_pages_are_appended(files, tmp_path):
    page = tmp_path / "vmsa0"
    page.write_bytes(b"\x42" * 4096)
    with_vmsa = run("--ovmf", files["fw"], "--vmsa", page, "--vmsa", page)
    assert with_vmsa.stdout.strip() == sm3(files["fw"].read_bytes() + page.read_bytes() * 2).hex()


def test_emit_policy_refuses_an_sha256_value_before_reading_anything(tmp_path):
    result = run("--ovmf", tmp_path / "absent.fd", "--emit-policy", "--algorithm", "sha256")
    assert result.exit_code == 2
    assert_one_line_error(result, "--emit-policy writes a CSV allowlist entry", "AMD SEV digest")


def _elf_with_pvh_note() -> bytes:
    note = struct.pack("<III", 4, 8, 18) + b"Xen\0" + struct.pack("<Q", 0x1000000)
    data = bytearray(0x3000)
    data[:16] = b"\x7fELF\x02\x01\x01" + bytes(9)
    struct.pack_into("<HHIQQQIHHHHHH", data, 16, 2, 62, 1, 0, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    struct.pack_into("<IIQQQQQQ", data, 64, 4, 4, 0x2000, 0, 0, len(note), len(note), 4)
    data[0x2000:0x2000 + len(note)] = note
    return bytes(data)


@pytest.mark.parametrize("unpinned", ["--no-kernel-hashes", "elf"])
def test_emit_policy_of_a_firmware_only_value_warns_that_the_kernel_is_not_pinned(files, tmp_path, unpinned):
    args = full(files, "--cmdline", "quiet", "--emit-policy")
    if unpinned == "elf":
        (tmp_path / "vmlinux").write_bytes(_elf_with_pvh_note())
        args[3] = tmp_path / "vmlinux"
    else:
        args.append(unpinned)
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert "warning: this value does not depend on the kernel, initrd or cmdline" in result.stderr
    assert "# warning: this value does not depend on the kernel, initrd or cmdline" in result.stdout
    cmdline_lines = [x for x in result.stdout.splitlines() if x.startswith("#   cmdline")]
    assert cmdline_lines == ['#   cmdline "quiet"  (not measured)']
    assert tomllib.loads(result.stdout)["measurements"][0]["value"] == sm3(files["fw"].read_bytes()).hex()
    pinned = run(*full(files, "--cmdline", "quiet", "--emit-policy"))
    assert "does not depend" not in pinned.stderr + pinned.stdout and "not measured" not in pinned.stdout


def test_emit_policy_with_explain_keeps_a_hostile_file_name_inside_its_comments(files, tmp_path):
    hostile = tmp_path / 'fw\n[[measurements]]\nvalue = "00"'
    hostile.write_bytes(files["fw"].read_bytes())
    result = run("--ovmf", hostile, "--emit-policy", "--explain", "--label", "x")
    assert tomllib.loads(result.stdout) == {"measurements": [{"value": sm3(hostile.read_bytes()).hex(), "label": "x"}]}


def test_emit_policy_default_label_of_a_non_utf8_file_name_stays_valid_toml(files, tmp_path):
    odd = tmp_path / os.fsdecode(b"fw\xff.fd")  # a file name that is not UTF-8
    odd.write_bytes(files["fw"].read_bytes())
    result = run("--ovmf", odd, "--emit-policy")
    entry = tomllib.loads(result.stdout)["measurements"][0]
    assert entry["label"] == "fw\\xff.fd"


def test_warnings_escape_file_names(files, tmp_path):
    hostile = tmp_path / "k\x1b[31m\nforged line"
    hostile.write_bytes(b"\0" * 600)  # not a bzImage: a warning that names the file
    result = run("--ovmf", files["fw"], "--kernel", hostile)
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warning and "\x1b" not in result.stderr and "forged line" in warning[0], result.stderr


def test_a_newline_in_a_missing_file_name_stays_on_the_error_line(tmp_path):
    assert_one_line_error(run("--ovmf", tmp_path / "no\nfile"), "no\\x0afile: no such file")


def test_emit_policy_prints_a_toml_entry(files):
    result = run(*full(files, "--cmdline", "quiet", "--emit-policy", "--label", 'prod "image" 2026-11'))
    digest = run(*full(files, "--cmdline", "quiet")).stdout.strip()
    assert tomllib.loads(result.stdout) == {"measurements": [{"value": digest, "label": 'prod "image" 2026-11'}]}
    explained = run(*full(files, "--cmdline", "quiet", "--emit-policy", "--explain"))
    entry = tomllib.loads(explained.stdout)["measurements"][0]
    assert entry == {"value": digest, "label": "OVMF.fd + vmlinuz + initrd.img"}
    assert "# hash table" in explained.stdout


# -- bad input: one clear line, no traceback -----------------------------------------------------------

def test_missing_firmware(tmp_path):
    assert_one_line_error(run("--ovmf", tmp_path / "missing.fd"), "firmware", "missing.fd: no such file")


def test_empty_firmware_name():
    assert_one_line_error(run("--ovmf", ""), "the firmware file name is empty")


def test_match_on_a_combined_image_read_from_a_pipe(files, tmp_path):
    import os
    import threading

    fv = bytearray(0x20000)
    fv[16:32] = ovmf.NV_STORE_FV_GUID.bytes_le
    fv[32:40] = struct.pack("<Q", 0x20000)
    fv[40:44] = b"_FVH"
    code_only = run("--ovmf", files["fw"], "--kernel", files["kernel"]).stdout.strip()
    read_fd, write_fd = os.pipe()

    def feed():
        with os.fdopen(write_fd, "wb") as w:
            w.write(bytes(fv) + files["fw"].read_bytes())

    threading.Thread(target=feed, daemon=True).start()
    try:
        result = run("--ovmf", f"/dev/fd/{read_fd}", "--kernel", files["kernel"], "--match-measure", code_only)
    finally:
        os.close(read_fd)
    assert result.exit_code == 5 and "Illegal seek" not in result.output
    assert "reproduced by: firmware without its variable store" in result.stdout


def test_directory_as_kernel(files, tmp_path):
    assert_one_line_error(run("--ovmf", files["fw"], "--kernel", tmp_path), "is a directory")


def test_initrd_without_kernel(files):
    result = run("--ovmf", files["fw"], "--initrd", files["initrd"])
    assert result.exit_code == 2
    assert_one_line_error(result, "initrd was given without a kernel")


def test_nul_in_cmdline(files, tmp_path):
    (tmp_path / "cmdline").write_bytes(b"quiet\0x")
    assert_one_line_error(run(*full(files, "--cmdline-file", tmp_path / "cmdline")), "NUL byte at offset 5")


def test_non_bzimage_kernel_warns(files, tmp_path):
    (tmp_path / "raw").write_bytes(bytes(4096))
    result = run("--ovmf", files["fw"], "--kernel", tmp_path / "raw")
    assert result.exit_code == 0 and len(result.stdout.strip()) == 64
    assert result.stderr.startswith("warning: kernel ") and "not a Linux bzImage" in result.stderr


def test_csv3_is_refused_with_an_explanation(files):
    result = run("--ovmf", files["fw"], "--generation", "csv3")
    assert result.exit_code == 2
    assert_one_line_error(result, "CSV3 launch digests cannot be computed from public information")
    assert "hint:" in result.stderr and "metadata" in result.stderr


@pytest.mark.parametrize("args, fragment", [
    (["--generation", "csv2"], "needs the VMSA pages"),
    (["--cmdline", "a", "--cmdline-file", "f", "--kernel", "k"], "mutually exclusive"),
    (["--label", "x"], "add --emit-policy"),
    (["--emit-policy", "--format", "json"], "prints TOML"),
])
def test_option_conflicts(files, args, fragment):
    result = run("--ovmf", files["fw"], *args)
    assert result.exit_code == 2
    assert_one_line_error(result, fragment)


def test_wrong_size_vmsa_and_firmware_without_area(files, tmp_path):
    (tmp_path / "vmsa").write_bytes(bytes(100))
    assert_one_line_error(run("--ovmf", files["fw"], "--vmsa", tmp_path / "vmsa"), "is 100 bytes")
    (tmp_path / "plain.fd").write_bytes(bytes(0x10000))
    assert_one_line_error(run("--ovmf", tmp_path / "plain.fd", "--kernel", files["kernel"]),
                          "has no kernel-hashes table area")


# -- --match -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def forge():
    return Forge()


def _report(forge, tmp_path, measure, version=1, page=False, policy=0x1, name="report.cert"):
    path = tmp_path / name
    path.write_bytes(forge.report(version, measure=measure, page=page, policy=policy))
    return path


@pytest.mark.parametrize("version, page", [(1, False), (1, True), (2, False), (3, True)])
def test_match_report_in_any_container(forge, files, tmp_path, version, page):
    args = full(files, "--cmdline", "quiet")
    digest = bytes.fromhex(run(*args).stdout.strip())
    result = run(*args, "--match", _report(forge, tmp_path, digest, version, page))
    assert result.exit_code == 0, result.output
    assert "MATCH: the measure in" in result.stdout and "signature is not checked" in result.stdout


def test_match_mismatch_names_the_variant(forge, files, tmp_path):
    launched = bytes.fromhex(run(*full(files, "--cmdline", "quiet")).stdout.strip())
    result = run(*full(files, "--cmdline", "quiet\n", "--match", _report(forge, tmp_path, launched)))
    assert result.exit_code == 5
    assert "MISMATCH" in result.stdout
    assert "reproduced by: cmdline without its trailing newline" in result.stdout
    hashes_off = _report(forge, tmp_path, sm3(files["fw"].read_bytes()), name="off.cert")
    result = run(*full(files, "--cmdline", "quiet", "--match", hashes_off, "--format", "json"))
    doc = json.loads(result.stdout)
    assert result.exit_code == 5 and doc["match"]["matched"] is False
    assert doc["match"]["reproduced_by"][0]["changes"][0]["how"] == "--no-kernel-hashes"
    assert doc["match"]["signature_checked"] is False
    assert "no initrd" in doc["match"]["changes_tried"]


def test_unexplained_mismatch_prints_the_components(forge, files, tmp_path):
    result = run(*full(files, "--match", _report(forge, tmp_path, bytes(32), policy=0x45)))
    assert result.exit_code == 5
    assert "none of" in result.stdout and "CSV3 bit" in result.stdout
    assert hashlib.sha256(files["initrd"].read_bytes()).hexdigest() in result.stdout


def test_match_measure_hex_and_bad_report(files, tmp_path):
    digest = run("--ovmf", files["fw"]).stdout.strip()
    assert run("--ovmf", files["fw"], "--match-measure", digest.upper()).exit_code == 0
    assert run("--ovmf", files["fw"], "--match-measure", "00" * 32).exit_code == 5
    assert run("--ovmf", files["fw"], "--match-measure", "00").exit_code == 2
    (tmp_path / "junk.cert").write_bytes(b"\x01" * 100)
    assert_one_line_error(run("--ovmf", files["fw"], "--match", tmp_path / "junk.cert"), "junk.cert")


def test_match_real_v1_report_decodes_its_measure(real_dir, digest_dir):
    result = run("--ovmf", digest_dir / "ovmf_AmdSev_suffix.bin", "--match", real_dir / "report.cert")
    assert result.exit_code == 5  # its inputs are unknown; the decoded measure is what must show
    assert "1178dadbf826ec7a07444ba358376d81c312cb53d703f9da83b26c1eee2ea052" in result.stdout


# -- progress bar --------------------------------------------------------------------------------------

class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal_for_large_inputs(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bar = cli_module._DigestProgressBar()
    for done in range(0, 301 << 20, 100 << 20):
        bar(done, 300 << 20)
    bar.close()
    assert "hashing" in terminal.getvalue()
    small = cli_module._DigestProgressBar()
    small(10, 1 << 20)
    assert small.enabled is False and small.bar is None


def test_progress_with_an_unknown_total_counts_bytes_on_a_terminal(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bar = cli_module._DigestProgressBar()
    for done in range(0, 301 << 20, 1 << 20):
        bar(done, None)
    bar.close()
    assert "hashing: 300 MiB read (a pipe or device: total unknown)" in terminal.getvalue()
    assert terminal.getvalue().endswith("\n")
    quiet = _Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    small = cli_module._DigestProgressBar()
    small(10 << 20, None)  # a small pipe: nothing to show
    small.close()
    assert quiet.getvalue() == ""
