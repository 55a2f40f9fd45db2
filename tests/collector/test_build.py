"""`make`, `make dynamic`, `make sdk`, `make install` and `make test` of the C collector."""

import os
import re
import shutil

import pytest
from collector_support import TOOLS, copy_collector, make, run

PUBLIC_API = {
    "vmmcall_get_attestation_report", "ioctl_get_attestation_report", "verify_attestation_report",
    "vmmcall_get_sealing_key", "ioctl_get_sealing_key", "vmmcall_get_attestation_report_ex",
    "ioctl_get_attestation_report_ex", "vmmcall_get_sealing_key_ex", "ioctl_get_sealing_key_ex",
    "verify_attestation_report_ex", "csv_check_trust_root", "csv_strerror", "csv_last_error",
}


def test_default_target_builds_static_tools(collector):
    for tool in TOOLS:
        path = collector / tool
        assert path.is_file() and os.access(path, os.X_OK), f"{tool} was not built"
        ldd = run(["ldd", path])
        assert "not a dynamic executable" in (ldd.stdout + ldd.stderr), f"{tool}: {ldd.stdout}{ldd.stderr}"


def test_static_link_notes_are_filtered_but_errors_are_not(collector, tmp_path):
    # glibc's "statically linked applications" notes are dropped; a real link error still fails make.
    broken = copy_collector(tmp_path / "broken")
    (broken / "tools" / "get_key.c").write_text(
        '#include "collect_tool.h"\nint no_such_function(void);\n'
        "int main(void) { return no_such_function(); }\n")
    result = make(broken, "get-key", check=False)
    assert result.returncode != 0
    assert "no_such_function" in result.stderr
    clean = make(broken, "verify-attestation")
    assert "statically linked applications" not in clean.stderr


def test_warnings_are_errors(toolchain, tmp_path):
    tree = copy_collector(tmp_path / "warn")
    status = tree / "src" / "status.c"
    status.write_text(status.read_text() + "\nstatic int never_used(void) { return 0; }\n")
    result = make(tree, "build/libcsv.a", check=False)
    assert result.returncode != 0
    assert "never_used" in result.stderr and "-Werror" in result.stderr


def test_dynamic_tools_use_libcsv_so(dynamic):
    lib = dynamic / "libcsv.so"
    assert lib.exists() and (dynamic / "libcsv.so.1").exists()
    for tool in TOOLS:
        ldd = run(["ldd", dynamic / tool])
        assert ldd.returncode == 0, ldd.stderr
        line = next((l for l in ldd.stdout.splitlines() if "libcsv.so.1" in l), "")
        assert str(dynamic) in line, f"{tool} does not load the built libcsv.so: {ldd.stdout}"
    assert run([dynamic / "verify-attestation", "--help"]).returncode == 0


def test_shared_library_exports_only_the_public_api(dynamic):
    nm = run(["nm", "-D", "--defined-only", dynamic / "libcsv.so"])
    exported = {m.group(1) for m in re.finditer(r" T (\w+)@@LIBCSV_1", nm.stdout)}
    assert exported == PUBLIC_API


SDK_PROGRAM = r"""
#include <stdio.h>
#include <string.h>
#include <csv_sdk.h>

int main(int argc, char **argv)
{
    static unsigned char report[CSV_PAGE_LEN];
    if (strcmp(csv_strerror(CSV_ERR_NOT_CSV_GUEST), "not a CSV guest") != 0)
        return 10;
    if (ioctl_get_attestation_report(report, 10) != CSV_ERR_BUFFER_TOO_SMALL)
        return 11;
    if (argc < 2)
        return 0;
    FILE *f = fopen(argv[1], "rb");
    size_t n = f ? fread(report, 1, sizeof(report), f) : 0;
    struct csv_verify_result result;
    int st = verify_attestation_report_ex(report, (unsigned)n, NULL, &result);
    printf("%d %s %s\n", st, result.chip_id, st ? csv_last_error() : "ok");
    return st == CSV_OK ? 0 : 12;
}
"""


def test_sdk_builds_a_program(collector, tmp_path, real_dir):
    make(collector, "sdk")
    sdk = collector / "build" / "sdk"
    assert (sdk / "include" / "csv_sdk.h").read_bytes() == (collector / "csv_sdk.h").read_bytes()
    source = tmp_path / "app.c"
    source.write_text(SDK_PROGRAM)
    app = tmp_path / "app"
    cc = run(["gcc", "-Wall", "-Werror", "-I", sdk / "include", "-o", app, source, sdk / "lib" / "libcsv.a",
              "-lcrypto"])
    assert cc.returncode == 0, cc.stderr
    result = run([app, real_dir / "report.cert"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split()[:2] == ["0", "NZA9T14052605"]


def test_install_layout(collector, tmp_path):
    prefix = tmp_path / "prefix"
    make(collector, "install", f"PREFIX={prefix}")
    for tool in TOOLS:
        assert os.access(prefix / "bin" / tool, os.X_OK)
    for name in ("libcsv.a", "libcsv.so", "libcsv.so.1"):
        assert (prefix / "lib" / name).exists(), name
    assert (prefix / "include" / "csv_sdk.h").exists()
    pc = (prefix / "lib" / "pkgconfig" / "libcsv.pc").read_text()
    assert f"prefix={prefix}" in pc and "Requires.private: libcrypto" in pc
    if shutil.which("pkg-config"):
        flags = run(["pkg-config", "--libs", "libcsv"], env=dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig")))
        assert "-lcsv" in flags.stdout


def _summary(output: str) -> tuple[int, int, int]:
    m = re.search(r"(\d+) checks passed, (\d+) failed, (\d+) tests skipped", output)
    assert m, output
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def test_make_test_with_vectors(collector, real_dir):
    result = make(collector, "test", f"VECTORS={real_dir}", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    passed, failed, skipped = _summary(result.stdout)
    assert failed == 0 and passed > 300
    if os.geteuid() == 0:
        assert skipped == 0, result.stdout


def test_make_test_without_vectors_skips_with_reason(collector, tmp_path):
    result = make(collector, "test", f"VECTORS={tmp_path / 'absent'}", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    _, failed, skipped = _summary(result.stdout)
    assert failed == 0 and skipped >= 4
    assert "skip - test_verify_real: real vectors absent" in result.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="the privileged pagemap test needs root")
def test_unit_tests_cover_pagemap_as_root(collector, tmp_path):
    result = make(collector, "test", f"VECTORS={tmp_path / 'absent'}", check=False)
    assert "test_pagemap_privileged" not in result.stdout  # neither skipped nor failed
    assert "test_pagemap_unprivileged" not in result.stdout
