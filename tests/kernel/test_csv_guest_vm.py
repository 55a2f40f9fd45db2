"""csv-guest end to end on a real Linux kernel under QEMU TCG.

The module's test build answers GET_REPORT with a forge report (fake firmware), the collector's static
ioctl-get-attestation fetches it through /dev/csv-guest, and csvverify verifies what came out of the
guest against the forge test root. A probe program records the driver's errno for each bad argument.
Skipped with the reason when QEMU, a Debian kernel image with matching headers or busybox-static is
missing (`.ci/run` installs them).
"""

import base64
import errno
import json
import re
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import csv_guest_vm as vm
from csvverify.report import EXT, V1

FIRMWARE_V1 = "/lib/firmware/csv-guest/v1.bin"

# Bad and good arguments (kernel/tests/csv_guest_probe.c) and the errno the driver must return.
PROBE_CASES = {
    "short-len": errno.EINVAL,
    "zero-len": errno.EINVAL,
    "negative-len": errno.EINVAL,
    "partial-page-len": errno.EINVAL,
    "two-page-len": errno.EINVAL,
    "huge-len": errno.EINVAL,
    "null-ptr": errno.EINVAL,
    "bad-ptr": errno.EFAULT,
    "bad-arg": errno.EFAULT,
    "readonly-buf": errno.EFAULT,
    "unknown-cmd": errno.ENOTTY,
    "rtmr-cmd": errno.ENOTTY,
    "compat32-cmd": errno.ENOTTY,
    "ext-unknown-flags": errno.EINVAL,
    "ext-host-data-only": errno.EINVAL,
    f"roundtrip:{FIRMWARE_V1}": 0,
    f"legacy-roundtrip:{FIRMWARE_V1}": 0,
    # 0xAA outside the request: the driver copies in only the request (and zeroes 112..131 of a
    # plain one), so the fake firmware, which rejects anything but zeros after it, still answers.
    f"dirty-tail-roundtrip:{FIRMWARE_V1}": 0,
    f"dirty-ext-area-roundtrip:{FIRMWARE_V1}": 0,
    f"ext-dirty-tail-roundtrip:{FIRMWARE_V1}": 0,
    f"concurrent:{FIRMWARE_V1}": 0,
}
ROUND_TRIPS = [name for name in PROBE_CASES if ":" in name]
CONCURRENT = f"concurrent:{FIRMWARE_V1}"

# Hypervisor status (simulated by the test backend) -> errno; the table in kernel/README.md.
HV_CASES = {
    "hv:-1": errno.EPERM,          # -KVM_EPERM
    "hv:-1000": errno.EOPNOTSUPP,  # -KVM_ENOSYS
    "hv:-25": errno.ENODEV,        # host: not an SEV/CSV guest
    "hv:-12": errno.ENOMEM,        # host could not pin the page
    "hv:-5": errno.EIO,            # firmware failure
    "hv:-14": errno.EIO,           # host refused the buffer: not the caller's pointer
    "hv:-22": errno.EIO,
    "hv:-512": errno.EIO,          # -ERESTARTSYS must never reach userspace
    "hv:-4095": errno.EIO,
    "hv:-4096": errno.EIO,         # outside [-4095, -1]
    "hv:25": errno.EIO,            # positive, as older drivers passed through
    "hv:4294967296": errno.EIO,
}


@dataclass
class Scenario:
    """What the test chose: per report, the mnonce and user data, and the fake firmware's answer."""

    mnonce: dict
    user_data: dict
    firmware: dict  # name -> the bytes the fake firmware returns
    expected: dict  # name -> those bytes with the sealing-key field blanked
    sealing_keys: list
    root_cert: bytes
    hsk_cek: bytes


def make_scenario(forge) -> Scenario:
    mnonce = {"v1": secrets.token_bytes(16), "v2": secrets.token_bytes(16)}
    user_data = {name: b"csv-guest e2e " + name.encode() + b" " + secrets.token_bytes(24) for name in mnonce}
    firmware = {
        "v1": forge.report(1, user_data=user_data["v1"], mnonce=mnonce["v1"]),
        "v2": forge.report(2, user_data=user_data["v2"], mnonce=mnonce["v2"], page=True),
    }
    expected, keys = {}, []
    for name, layout in (("v1", V1), ("v2", EXT)):
        raw = bytearray(firmware[name])
        key = bytes(raw[layout.sealing_key_offset:layout.mac_offset])
        assert any(key), "the forge report must carry a non-zero sealing key for the blanking check to mean anything"
        keys.append(key)
        raw[layout.sealing_key_offset:layout.mac_offset] = bytes(32)
        expected[name] = bytes(raw)
    return Scenario(mnonce, user_data, firmware, expected, keys, forge.root_cert, forge.hsk_cek())


@dataclass
class Session:
    collector: Path
    probe: Path
    scenario: Scenario
    run: vm.GuestRun
    results: vm.GuestResults


@pytest.fixture(scope="module")
def kernel():
    reason = vm.missing_build_tool()
    if reason:
        pytest.skip(reason)
    found = vm.find_kernel()
    if isinstance(found, str):
        pytest.skip(found)
    return found


@pytest.fixture(scope="module")
def builds(kernel, tmp_path_factory):
    work = tmp_path_factory.mktemp("csv-guest-build")
    return vm.build_module(work / "normal", kernel, False), vm.build_module(work / "test", kernel, True)


@pytest.fixture(scope="module")
def session(kernel, builds, forge, tmp_path_factory) -> Session:
    reason = vm.missing_vm_tool()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("csv-guest-vm")
    started = time.monotonic()
    normal, test = builds
    probe = vm.build_probe(work)
    collector = vm.build_collector(work / "collector")
    scenario = make_scenario(forge)
    env = "".join(f"{key}={value}\n" for key, value in {
        "MNONCE_V1": scenario.mnonce["v1"].hex(), "USER_DATA_V1": scenario.user_data["v1"].hex(),
        "MNONCE_V2": scenario.mnonce["v2"].hex(), "USER_DATA_V2": scenario.user_data["v2"].hex(),
        "PROBE_CASES": "'" + " ".join(PROBE_CASES) + "'", "HV_CASES": "'" + " ".join(HV_CASES) + "'",
    }.items())
    files = {
        "init": vm.GUEST_INIT, "bin/busybox": vm.BUSYBOX, "test.env": env.encode(),
        "csv-guest-normal.ko": normal.ko, "csv-guest-test.ko": test.ko,
        "ioctl-get-attestation": collector, "csv-guest-probe": probe,
        "lib/firmware/csv-guest/v1.bin": scenario.firmware["v1"],
        "lib/firmware/csv-guest/v2.bin": scenario.firmware["v2"],
    }
    initramfs = vm.write_initramfs(work / "initramfs.cpio", files,
                                   {"init", "bin/busybox", "ioctl-get-attestation", "csv-guest-probe"})
    built = time.monotonic()
    run = vm.boot(kernel, initramfs, work)
    print(f"\ncsv-guest VM: tools and initramfs {built - started:.1f} s, QEMU TCG boot to poweroff "
          f"{run.seconds:.1f} s (guest log: {work})")
    results = vm.parse_results(run.data)
    assert results.done, (f"the guest did not finish (QEMU exit {run.exit_code}, {run.seconds:.0f} s)\n"
                          f"--- console tail ---\n{run.console[-3000:]}\n--- data ---\n{run.data[-3000:]}")
    return Session(collector, probe, scenario, run, results)


def collected(session: Session, name: str) -> bytes:
    res = session.results
    assert res.collects.get(name) == 0, (
        f"ioctl-get-attestation ({name}) failed with exit {res.collects.get(name)}: {res.collect_output.get(name)}")
    return base64.b64decode(res.reports[name], validate=True)


# -- builds ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["normal", "test"])
def test_module_builds_without_warnings(builds, which):
    build = builds[0] if which == "normal" else builds[1]
    assert "CC [M]" in build.log and "csv_guest_main.o" in build.log, build.log
    assert build.ko.exists()
    assert vm.kbuild_warnings(build.log) == [], build.log


def test_normal_build_contains_no_test_backend(builds):
    normal, test = builds
    test_only_symbols = {"csv_test_backend_attest", "csv_test_backend_active", "test_firmware",
                         "test_skip_csv_check", "test_hv_result"}
    test_only_params = {"test_firmware", "test_skip_csv_check", "test_hv_result", "test_last_flags",
                        "test_last_request"}
    # Not only symbols: names and messages of the test backend anywhere in the file, debug info too
    # (inline stubs once left csv_test_backend_* in .debug_str of the normal build).
    test_only_strings = {b"csv_test_backend_", b"fake firmware", b"TEST BUILD"} | {p.encode() for p in test_only_params}
    # The check can fail: the test build has all of it.
    assert test_only_symbols <= set(vm.module_symbols(test.ko))
    assert test_only_params <= set(vm.module_parameters(test.ko))
    assert [m for m in test_only_strings if m not in test.ko.read_bytes()] == []
    assert not [s for s in vm.module_symbols(normal.ko) if "test" in s.lower()]
    assert vm.module_parameters(normal.ko) == []
    normal_bytes = normal.ko.read_bytes()
    assert [m for m in test_only_strings | {b"test_backend", b"TEST_BACKEND"} if m in normal_bytes] == []


def test_guest_tools_are_static(session):
    assert vm.is_static(session.collector)
    assert vm.is_static(session.probe)


# -- loading ----------------------------------------------------------------------------------------------

def test_refuses_to_load_outside_a_csv_guest(session):
    res = session.results
    # The normal build has no override: the test parameters are unknown to it and it still refuses.
    assert "unknown parameter 'test_skip_csv_check' ignored" in "\n".join(res.load_logs["normal-with-override"])
    for name in ("normal-with-override", "test-without-override"):
        assert res.loads[name] == errno.ENODEV, (name, res.loads)
        assert vm.driver_messages(res.load_logs[name]) == [REFUSAL], res.load_logs[name]  # exactly one line


def test_test_build_loads_with_override_and_unloads(session):
    res = session.results
    assert res.loads["test-with-override"] == 0, res.loads
    assert vm.driver_messages(res.load_logs["test-with-override"]) == [TEST_BUILD_WARNING]
    assert res.device_mode == "crw-rw-rw-"
    assert res.unload == (0, "")


# -- collection and verification -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["v1", "v2"])
def test_collected_report_is_the_firmware_report_with_the_key_blanked(session, name):
    report = collected(session, name)
    layout = V1 if name == "v1" else EXT
    assert report[layout.sealing_key_offset:layout.mac_offset] == bytes(32), "sealing-key field not blanked"
    assert report == session.scenario.expected[name], "the report changed on its way out of the guest"


@pytest.mark.parametrize("name", ["v1", "v2"])
def test_collected_report_verifies_against_the_forge_root(session, name, tmp_path):
    report, root, hsk_cek = tmp_path / f"{name}.cert", tmp_path / "root.cert", tmp_path / "hsk_cek.cert"
    report.write_bytes(collected(session, name))
    root.write_bytes(session.scenario.root_cert)
    hsk_cek.write_bytes(session.scenario.hsk_cek)
    proc = subprocess.run(
        [sys.executable, "-m", "csvverify", "verify", str(report), "--chain", "--hsk-cek", str(hsk_cek),
         "--trust-root", str(root), "--expect-user-data", session.scenario.user_data[name].hex(),
         "--expect-mnonce", session.scenario.mnonce[name].hex(), "--json"],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdict = json.loads(proc.stdout)["verdicts"][0]
    status = {check["id"]: check["status"] for check in verdict["checks"]}
    assert verdict["outcome"] == "pass"
    for check in ("root.pinned", "cek.signature", "pek.signature", "report.signature", "expect.user_data",
                  "expect.mnonce"):
        assert status.get(check) == "pass", (check, verdict["checks"])
    assert status.get("report.mac") == "skipped", "a blanked sealing-key field leaves the MAC unverifiable"


def test_extended_request_reaches_the_firmware(session):
    assert session.results.last_flags == {"v1": -1, "v2": 1}
    assert any("V2/V3 report" in line for line in session.results.collect_output["v2"])


# -- errnos -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", list(PROBE_CASES))
def test_argument_errno(session, case):
    got = session.results.cases.get(case)
    assert got is not None, f"the probe did not report {case}"
    assert got.errno == PROBE_CASES[case], f"{case}: errno {got.errno}, expected {PROBE_CASES[case]}"
    if case in ROUND_TRIPS:
        assert got.match, f"{case}: the page returned differs from the firmware's report"
    if case in ROUND_TRIPS and case != CONCURRENT:
        assert got.request, f"{case}: the fake firmware did not receive exactly the request that was sent"


def test_concurrent_requests_never_overlap_in_the_firmware(session):
    # The fake firmware holds each request a moment and fails one that finds another inside it.
    overlaps = [m for m in vm.driver_messages(session.results.kernel_log) if "at once" in m]
    assert overlaps == [], "requests reached the firmware at the same time: the driver's lock is missing"
    got = session.results.cases.get(CONCURRENT)
    assert got is not None and (got.errno, got.match) == (0, True), got


@pytest.mark.parametrize("case", list(HV_CASES))
def test_hypervisor_status_errno(session, case):
    got = session.results.cases.get(case)
    assert got is not None, f"the probe did not report {case}"
    assert got.errno == HV_CASES[case], f"{case}: errno {got.errno}, expected {HV_CASES[case]}"


def test_no_firmware_means_no_device(session):
    # Test build loaded outside a CSV guest with the fake firmware switched off: nothing to call.
    assert session.results.cases["plain"].errno == errno.ENODEV


# -- the log ------------------------------------------------------------------------------------------------

# Every line the driver may log (after its prefix "csv-guest: "); none carries an address or report bytes.
REFUSAL = "not a Hygon CSV guest (needs a Hygon CPU, encrypted guest memory and KVM): not loading"
TEST_BUILD_WARNING = "TEST BUILD with a fake firmware backend: never use it in production"
HV_FAILURE = re.compile(r"attestation request failed: hypervisor status -?\d+, returning -\d+")


def test_log_has_no_addresses_or_secrets(session):
    kernel_log = session.results.kernel_log
    messages = vm.driver_messages(kernel_log)
    assert len([m for m in messages if HV_FAILURE.fullmatch(m)]) >= 3, "the log check would be vacuous"
    for message in messages:
        assert message in (REFUSAL, TEST_BUILD_WARNING) or HV_FAILURE.fullmatch(message), \
            f"unexpected driver log line: {message}"
    kernel_pointer = re.compile(r"ffff[0-9a-f]{12}", re.I)
    assert not [line for line in kernel_log if "csv" in line and kernel_pointer.search(line)]
    everything = (session.run.console + session.run.data).lower()
    for key in session.scenario.sealing_keys:
        assert key.hex() not in everything, "a sealing key appeared in the guest's output"
