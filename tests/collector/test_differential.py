"""C `verify-attestation` against the Python `csvverify verify --json`: same verdict class on the same input.

Named cases run both verifiers as processes. The sampled single-byte flips of the real report run the
Python CLI in-process (click's CliRunner, same command code) to keep the suite fast; the exhaustive
sweep over every byte is marked slow.
"""

import json
import random
import subprocess
import sys

import pytest
from click.testing import CliRunner
from collector_support import run
from csvverify.cli import cli
from csvverify.forge import Forge

FLIP_SAMPLE = 150
PAGE_FLIP_SAMPLE = 120
V1_SIZE = 2548
EXT_SIZE = 3380
PAGE_SIZE = 4096
KEY = slice(2484, 2516)
PEK_WORDS = (0x1002, 4, 3)  # pubkey_usage PEK, algo SM2-SA, curve SM2: what the page probe looks for


def c_verify(collector, report, args) -> int:
    result = run([collector / "verify-attestation", report, *args])
    assert result.returncode in (0, 1, 3, 4, 5), f"C verifier crashed or misused: {result.returncode} {result.stderr}"
    return result.returncode


def py_verify(report, args) -> int:
    result = subprocess.run([sys.executable, "-m", "csvverify", "verify", str(report), *map(str, args), "--json"],
                            capture_output=True, text=True, timeout=120)
    if result.returncode in (0, 3, 4, 5):
        verdicts = json.loads(result.stdout)["verdicts"]
        assert verdicts[0]["exit_class"] == result.returncode
    return result.returncode


@pytest.fixture(scope="module")
def forge_files(tmp_path_factory):
    """A forge chain and reports, written once: name -> path."""
    forge = Forge()
    out = tmp_path_factory.mktemp("forge")
    files = {
        "root": forge.root_cert,
        "hsk_cek": forge.hsk_cek(),
        "other_chip_hsk_cek": forge.hsk_cek("FORGE0CHIP0002"),
        "good": forge.report(),
        "blanked": forge.report(sealing_key=bytes(32)),
        "v1_page": forge.report(page=True),
        "v2": forge.report(version=2),
        "v3_page": forge.report(version=3, page=True),
        "v2_blanked_page": forge.report(version=2, sealing_key=bytes(32), page=True),
        "other_anonce": forge.report(anonce=0x12345679),
    }
    good = forge.report()
    for name, offset in (("body", 70), ("signature", 200), ("signature_padding", 240), ("pek", 400),
                         ("sig_usage", 181), ("anonce", 189), ("sn", 2430), ("sealing_key", 2490), ("mac", 2530)):
        files[f"flip_{name}"] = _flip(good, offset)
    v1_page, v2_page = forge.report(page=True), forge.report(version=2, page=True)
    # A page is told apart by its PEK words and zero padding after the report (report-format.md §6.1).
    files["v1_page_tail"] = _flip(v1_page, 3000)
    files["v1_page_last_byte"] = _flip(v1_page, PAGE_SIZE - 1)
    files["v2_page_tail"] = _flip(v2_page, 4000)
    files["v2_page_first_pad_byte"] = _flip(v2_page, EXT_SIZE)
    files["page_reads_as_both"] = _with_ext_pek_words(v1_page)
    files["page_without_pek"] = _flip(v2_page, 1176)
    files["v1_signer_clear"] = _signer_block_cleared(good)
    files["v1_signer_clear_page"] = _signer_block_cleared(v1_page)
    files["v1_signer_clear_flip_pek"] = _flip(_signer_block_cleared(good), 400)
    blanked = forge.report(sealing_key=bytes(32))
    files["blanked_flip_sn"] = _flip(blanked, 2430)  # the chip id is unsigned: both must let it through
    files["blanked_flip_body"] = _flip(blanked, 70)
    paths = {}
    for name, data in files.items():
        path = out / f"{name}.cert"
        path.write_bytes(data)
        paths[name] = path
    return paths


def _flip(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    b = bytearray(data)
    b[offset] ^= mask
    return bytes(b)


def _with_ext_pek_words(page: bytes) -> bytes:
    """A V1 page that also carries the V2/V3 PEK words in clear at 1176: both layouts fit."""
    b = bytearray(page)
    b[1176:1188] = b"".join(w.to_bytes(4, "little") for w in PEK_WORDS)
    return bytes(b)


def _signer_block_cleared(report: bytes) -> bytes:
    """The CoCo evidence shape: the collector already de-obfuscated the V1 PEK and chip id."""
    from csvverify.report import deobfuscate_v1

    b = bytearray(report)
    b[336:2484] = deobfuscate_v1(bytes(b[:V1_SIZE]))[336:2484]
    return bytes(b)


FORGE_DATA = b"forge user data".hex()
FORGE_CASES = [
    # (report, options, expected class)
    ("good", ["--hsk-cek", "@hsk_cek", "--trust-root", "@root"], 0),
    ("good", ["--hsk-cek", "@hsk_cek"], 3),  # wrong root without --trust-root
    ("good", [], 0),  # no chain: self-consistent only
    ("blanked", ["--hsk-cek", "@hsk_cek", "--trust-root", "@root"], 0),
    ("blanked", ["--hsk-cek", "@hsk_cek", "--trust-root", "@root", "--expect-user-data", FORGE_DATA], 0),
    ("blanked", ["--hsk-cek", "@hsk_cek", "--trust-root", "@root", "--expect-user-data", "00"], 5),
    ("blanked", ["--hsk-cek", "@hsk_cek", "--trust-root", "@root", "--expect-mnonce", "00" * 16], 5),
    ("blanked", ["--hsk-cek", "@hsk_cek", "--trust-root", "@root", "--expect-measure", "00" * 32], 5),
    ("blanked", ["--chain"], 4),
    ("blanked", ["--chain", "--expect-user-data", "00"], 5),
    ("blanked", ["--hsk-cek", "@other_chip_hsk_cek", "--trust-root", "@root"], 3),
    ("v1_page", ["--hsk-cek", "@hsk_cek", "--trust-root", "@root"], 0),
    ("v2", ["--hsk-cek", "@hsk_cek", "--trust-root", "@root"], 0),
    ("v3_page", ["--hsk-cek", "@hsk_cek", "--trust-root", "@root"], 0),
    ("v2_blanked_page", ["--hsk-cek", "@hsk_cek", "--trust-root", "@root"], 0),
    ("other_anonce", ["--hsk-cek", "@hsk_cek", "--trust-root", "@root"], 0),
    ("other_anonce", ["--hsk-cek", "@hsk_cek", "--trust-root", "@root", "--expect-user-data", "00"], 5),
    ("v1_page_tail", ["--hsk-cek", "@hsk_cek", "--trust-root", "@root"], 1),
    ("v1_page_last_byte", [], 1),
    ("v2_page_tail", ["--hsk-cek", "@hsk_cek", "--trust-root", "@root"], 1),
    ("v2_page_first_pad_byte", [], 1),
    ("page_reads_as_both", ["--hsk-cek", "@hsk_cek", "--trust-root", "@root"], 1),
    ("page_without_pek", [], 1),
    ("v1_signer_clear", ["--hsk-cek", "@hsk_cek", "--trust-root", "@root"], 0),
    ("v1_signer_clear_page", ["--hsk-cek", "@hsk_cek", "--trust-root", "@root"], 0),
    ("v1_signer_clear_flip_pek", ["--hsk-cek", "@hsk_cek", "--trust-root", "@root"], 3),
    ("blanked_flip_sn", ["--hsk-cek", "@hsk_cek", "--trust-root", "@root"], 0),
    ("blanked_flip_body", ["--hsk-cek", "@hsk_cek", "--trust-root", "@root", "--expect-user-data", "00"], 3),
] + [(f"flip_{name}", ["--hsk-cek", "@hsk_cek", "--trust-root", "@root"], 3)
     for name in ("body", "signature", "signature_padding", "pek", "sig_usage", "anonce", "sn", "sealing_key", "mac")]


@pytest.mark.parametrize("report, options, expected", FORGE_CASES,
                         ids=[f"{i}-{r}" for i, (r, _, _) in enumerate(FORGE_CASES)])
def test_forge_cases_agree(collector, forge_files, report, options, expected):
    args = [forge_files[a[1:]] if a.startswith("@") else a for a in options]
    py = py_verify(forge_files[report], args)
    c = c_verify(collector, forge_files[report], args)
    assert (c, py) == (expected, expected)


REAL_CASES = [
    (["--chain", "--hsk-cek", "@hsk_cek.cert"], 0),
    (["--hsk", "@hsk.cert", "--cek", "@cek.cert"], 0),
    ([], 0),
    (["--chain", "--hsk-cek", "@hsk_cek.cert", "--expect-user-data", b"user data".hex(),
      "--expect-mnonce", "67c6697351ff4aec29cdbaabf2fbe346"], 0),
    (["--chain", "--hsk-cek", "@hsk_cek.cert", "--expect-mnonce", "00" * 16], 5),
    (["--chain", "--hsk-cek", "@hsk_cek.cert", "--trust-root", "@hrk.cert"], 0),
]


@pytest.mark.parametrize("options, expected", REAL_CASES)
def test_real_report_agrees(collector, real_dir, options, expected):
    args = [real_dir / a[1:] if a.startswith("@") else a for a in options]
    assert (c_verify(collector, real_dir / "report.cert", args), py_verify(real_dir / "report.cert", args)) \
        == (expected, expected)


def test_real_report_blanked_agrees(collector, real_dir, tmp_path):
    blanked = bytearray((real_dir / "report.cert").read_bytes())
    blanked[KEY] = bytes(32)
    path = tmp_path / "blanked.cert"
    path.write_bytes(bytes(blanked))
    args = ["--chain", "--hsk-cek", real_dir / "hsk_cek.cert"]
    assert (c_verify(collector, path, args), py_verify(path, args)) == (0, 0)


def _flip_verdicts(collector, real_dir, tmp_path, flips):
    """(offset, mask, C class, Python class) for each flip of the real report, with the chain."""
    hsk_cek = str(real_dir / "hsk_cek.cert")
    return _flip_verdicts_of((real_dir / "report.cert").read_bytes(), collector, tmp_path, flips,
                             ["--chain", "--hsk-cek", hsk_cek])


def _flip_verdicts_of(report: bytes, collector, tmp_path, flips, args):
    runner = CliRunner()
    out = []
    for offset, mask in flips:
        path = tmp_path / f"flip-{offset}.cert"
        path.write_bytes(_flip(report, offset, mask))
        py = runner.invoke(cli, ["verify", str(path), *args, "--json"])
        c = c_verify(collector, path, args)
        out.append((offset, mask, c, py.exit_code))
        path.unlink()
    return out


def _assert_c_rejects_what_python_rejects(results):
    missed = [(o, m, py) for o, m, c, py in results if py != 0 and c == 0]
    assert not missed, f"C accepted flips the Python verifier rejects (offset, mask, python class): {missed[:20]}"
    differ = [(o, m, c, py) for o, m, c, py in results if c != py]
    assert not differ, f"verdict classes differ (offset, mask, C, Python): {differ[:20]}"


def test_sampled_single_byte_flips(collector, real_dir, tmp_path):
    rng = random.Random(20240607)
    # Region boundaries first, then random offsets and masks across the whole report.
    edges = [0, 179, 180, 183, 184, 187, 188, 191, 192, 223, 224, 263, 264, 295, 296, 335, 336, 1379, 1380, 1531,
             1900, 2419, 2420, 2483, 2484, 2515, 2516, 2547]
    flips = [(o, 0x01) for o in edges] + [(rng.randrange(V1_SIZE), rng.randrange(1, 256)) for _ in range(FLIP_SAMPLE)]
    results = _flip_verdicts(collector, real_dir, tmp_path, flips)
    assert all(py != 0 for _, _, _, py in results), "every flip of the real report is rejected by Python"
    _assert_c_rejects_what_python_rejects(results)


# Offsets a page probe turns on: V1 PEK words and anonce, V2/V3 PEK words, and the padding edges.
PAGE_EDGES = [188, 191, 344, 347, 348, 352, 355, 1176, 1179, 1180, 1184, 1187, 2547, 2548, 2549, 3000, 3379, 3380,
              3381, 4000, 4095]


@pytest.mark.parametrize("version", [1, 2])
def test_sampled_single_byte_flips_of_a_page(collector, forge, tmp_path, version):
    root, hsk_cek = tmp_path / "root.cert", tmp_path / "hsk_cek.cert"
    root.write_bytes(forge.root_cert)
    hsk_cek.write_bytes(forge.hsk_cek())
    page = forge.report(version=version, page=True)
    rng = random.Random(4096 + version)
    flips = [(o, 0x01) for o in PAGE_EDGES] + [(o, rng.randrange(1, 256)) for o in PAGE_EDGES] \
        + [(rng.randrange(PAGE_SIZE), rng.randrange(1, 256)) for _ in range(PAGE_FLIP_SAMPLE)]
    results = _flip_verdicts_of(page, collector, tmp_path, flips,
                                ["--hsk-cek", str(hsk_cek), "--trust-root", str(root)])
    report_len = V1_SIZE if version == 1 else EXT_SIZE
    tail = [py for o, _, _, py in results if o >= report_len]
    assert tail and set(tail) == {1}, "Python rejects every page with non-zero padding as not a report page"
    assert {py for _, _, _, py in results} >= {1, 3}, "the sample must reach both the probe and the signatures"
    _assert_c_rejects_what_python_rejects(results)


@pytest.mark.slow
def test_every_single_byte_flip(collector, real_dir, tmp_path):
    rng = random.Random(7)
    flips = [(o, rng.randrange(1, 256)) for o in range(V1_SIZE)]
    _assert_c_rejects_what_python_rejects(_flip_verdicts(collector, real_dir, tmp_path, flips))
