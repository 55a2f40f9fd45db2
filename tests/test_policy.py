"""Appraisal policies: the file format, overrides, each rule's verdict and exit class, `csvverify policy …`."""

import json
import textwrap

import pytest

from csvverify.policy import TEMPLATE, PolicyError, load_policy, parse_policy


@pytest.fixture
def env(tmp_path, forge):
    root = tmp_path / "root.cert"
    root.write_bytes(forge.root_cert)
    hc = tmp_path / "hsk_cek.cert"
    hc.write_bytes(forge.hsk_cek())
    hc2 = tmp_path / "hsk_cek2.cert"
    hc2.write_bytes(forge.hsk_cek("DENIEDCHIP0002"))

    def report(name, **kw):
        path = tmp_path / name
        path.write_bytes(forge.report(1, **kw))
        return path

    def policy(body):
        path = tmp_path / "fleet.toml"
        path.write_text("version = 1\n" + textwrap.dedent(body))
        return path

    return {"trust": ["--trust-root", root, "--hsk-cek", hc], "hc2": hc2, "report": report, "policy": policy}


def verdict_of(run_cli, *args):
    res = run_cli(*args, "--json")
    return res.exit_code, json.loads(res.stdout)["verdicts"][0]


def check(v, cid):
    return next(c for c in v["checks"] if c["id"] == cid)


@pytest.mark.parametrize("policy_word, require, forbid, status", [
    (0x1, ["NODBG"], [], "pass"),
    (0x0, ["NODBG"], [], "fail"),
    (0x45, ["NODBG", "ES", "CSV3"], [], "pass"),
    (0x41, ["NODBG", "ES"], [], "fail"),
    (0x9, ["NODBG"], ["NOSEND"], "fail"),
    (0x1, [], ["NOSEND", "DOMAIN"], "pass"),
])
def test_guest_policy_bits(run_cli, env, policy_word, require, forbid, status):
    report = env["report"]("r.cert", policy=policy_word)
    pol = env["policy"](f"[guest_policy]\nrequire = {json.dumps(require)}\nforbid = {json.dumps(forbid)}\n")
    code, v = verdict_of(run_cli, report, *env["trust"], "--policy", pol)
    c = check(v, "policy.guest_policy")
    assert c["status"] == status, c
    assert code == (0 if status == "pass" else 6)
    if status == "fail":
        assert "fleet.toml:" in c["reason"] and v["outcome"] == "fail"


def test_debug_needs_allow_debug(run_cli, env):
    report = env["report"]("r.cert", policy=0x0)
    pol = env["policy"]("[guest_policy]\nallow_debug = false\n")
    code, v = verdict_of(run_cli, report, *env["trust"], "--policy", pol)
    assert code == 6 and "NODBG is clear" in check(v, "policy.guest_policy")["reason"]
    assert any(f["id"] == "debug-allowed" for f in v["findings"])
    code, v = verdict_of(run_cli, report, *env["trust"], "--policy", pol, "--allow-debug")
    assert code == 0 and "--allow-debug" in check(v, "policy.guest_policy")["reason"]


def test_measurement_allowlist_names_the_label(run_cli, env):
    report = env["report"]("r.cert", measure=b"\x22" * 32)
    pol = env["policy"](f"""
        [[measurements]]
        value = "{'11' * 32}"
        label = "old image"
        [[measurements]]
        value = "{'22' * 32}"
        label = "prod image 2026-11"
        """)
    code, v = verdict_of(run_cli, report, *env["trust"], "--policy", pol)
    assert code == 0 and "'prod image 2026-11'" in check(v, "policy.measurement")["reason"]
    other = env["report"]("o.cert", measure=b"\x33" * 32)
    code, v = verdict_of(run_cli, other, *env["trust"], "--policy", pol)
    c = check(v, "policy.measurement")
    assert code == 6 and c["status"] == "fail" and "none of the 2 accepted values of measurements (" in c["reason"]
    code, v = verdict_of(run_cli, other, *env["trust"], "--policy", pol, "--expect-measure", "33" * 32)
    assert code == 0 and check(v, "policy.measurement")["status"] == "skipped"
    assert "overridden by --expect-measure" in check(v, "policy.measurement")["reason"]


def test_deny_list_with_as_of(run_cli, env):
    report = env["report"]("d.cert", chip_id="DENIEDCHIP0002")
    trust = ["--trust-root", env["trust"][1], "--hsk-cek", env["hc2"]]
    pol = env["policy"]("""
        [[chips.deny]]
        chip = "DENIEDCHIP0002"
        since = 2026-10-01
        reason = "firmware key exposed"
        """)
    code, v = verdict_of(run_cli, report, *trust, "--policy", pol, "--as-of", "2026-09-30")
    assert code == 0 and check(v, "policy.chip")["status"] == "pass"
    assert v["policy"]["as_of"] == "2026-09-30T00:00:00+00:00"
    code, v = verdict_of(run_cli, report, *trust, "--policy", pol, "--as-of", "2026-10-01T00:00:00Z")
    c = check(v, "policy.chip")
    assert code == 6 and c["status"] == "fail"
    assert "denied since 2026-10-01 (firmware key exposed)" in c["reason"] and "fleet.toml:" in c["reason"]
    code, v = verdict_of(run_cli, report, *trust, "--policy", pol)  # default: now
    assert code == 6


def test_allow_list_and_flag_override(run_cli, env):
    report = env["report"]("r.cert")
    pol = env["policy"]('[chips]\nallow = ["SOMEOTHERCHIP1"]\n')
    code, v = verdict_of(run_cli, report, *env["trust"], "--policy", pol)
    assert code == 6 and "not on the allow list" in check(v, "policy.chip")["reason"]
    code, v = verdict_of(run_cli, report, *env["trust"], "--policy", pol, "--allow-chip", "FORGE0CHIP0001")
    assert code == 0 and v["policy"]["rules"]["chips.allow"]["from"] == "--allow-chip"


def test_firmware_minimums(run_cli, env, forge, tmp_path):
    v2 = tmp_path / "v2.bin"
    v2.write_bytes(forge.report(2, build=2300))
    pol = env["policy"]('[firmware]\nmin_api = "1.4"\nmin_build = 2339\nmin_cek_version = 2\n')
    code, v = verdict_of(run_cli, v2, *env["trust"], "--policy", pol)
    reason = check(v, "policy.firmware")["reason"]
    assert code == 6 and "firmware API (PEK) 1.3 < 1.4" in reason and "firmware build 2300 < 2339" in reason
    code, v = verdict_of(run_cli, v2, *env["trust"], "--policy", pol, "--min-api", "1.3", "--min-build", "2300")
    assert code == 0 and check(v, "policy.firmware")["status"] == "pass"
    assert v["policy"]["rules"]["firmware.min_api"] == {"value": [1, 3], "from": "--min-api"}


def test_requirements(run_cli, env, forge, tmp_path):
    blanked = env["report"]("b.cert", sealing_key=bytes(32))
    pol = env["policy"]("require_chain = true\nrequire_mac = true\nreport_versions = [2, 3]\n")
    code, v = verdict_of(run_cli, blanked, *env["trust"], "--policy", pol)
    reason = check(v, "policy.requirements")["reason"]
    assert code == 6 and "require_mac" in reason and "not checkable" in reason and "V1 is not among V2, V3" in reason
    code, v = verdict_of(run_cli, blanked, "--policy", pol)
    assert "the chain was not checked" in check(v, "policy.requirements")["reason"]


def test_forensic_flags_warn_or_fail(run_cli, env):
    report = env["report"]("r.cert")  # sealing key present, no expectation
    pol = env["policy"]('[forensics]\nsealing_key_present = "fail"\nv1_without_expectation = "warn"\n')
    code, v = verdict_of(run_cli, report, *env["trust"], "--policy", pol)
    c = check(v, "policy.forensics")
    assert code == 6 and "sealing_key_present" in c["reason"] and "v1_without_expectation" not in c["reason"]
    pol = env["policy"]('[forensics]\nv1_without_expectation = "fail"\n[expect]\nuser_data = ["666f7267652075736572206461746100"]\n')
    code, v = verdict_of(run_cli, report, *env["trust"], "--policy", pol)
    assert code == 0, v  # the policy's own expectation counts as one
    assert check(v, "policy.user_data")["status"] == "pass"


def test_user_data_file_of_accepted_values(run_cli, env, tmp_path):
    (tmp_path / "challenges.txt").write_text("# issued challenges\n00ff\n" + b"forge user data".hex() + "\n")
    report = env["report"]("r.cert")
    pol = env["policy"]('[expect]\nuser_data_file = "challenges.txt"\n')
    code, v = verdict_of(run_cli, report, *env["trust"], "--policy", pol)
    assert code == 0 and check(v, "policy.user_data")["status"] == "pass"


def test_verdict_records_policy_and_origins(run_cli, env):
    report = env["report"]("r.cert")
    pol = env["policy"]('[guest_policy]\nrequire = ["NODBG"]\n')
    _, v = verdict_of(run_cli, report, *env["trust"], "--policy", pol, "--forbid-bit", "NOSEND")
    assert v["policy"]["sha256"] == load_policy(pol).override("guest_policy.forbid", ("NOSEND",), "--forbid-bit").sha256
    assert v["policy"]["rules"]["guest_policy.require"]["from"].endswith("fleet.toml:3")
    assert v["policy"]["rules"]["guest_policy.forbid"]["from"] == "--forbid-bit"
    _, v = verdict_of(run_cli, report, *env["trust"])
    assert v["policy"] is None and check(v, "policy.chip")["status"] == "not-applicable"


@pytest.mark.parametrize("body, message", [
    ('[guest_policy]\nrequre = ["NODBG"]\n', "fleet.toml:3: guest_policy.requre: unknown key (did you mean 'require'?)"),
    ("requre_chain = true\n", "fleet.toml:2: requre_chain: unknown key (did you mean 'require_chain'?)"),
    ('require_chain = "yes"\n', "fleet.toml:2: require_chain: expected true or false"),
    ('[[measurements]]\nvalue = "zz"\n', "fleet.toml:3: measurements.value: 'zz' is not hex"),
    ('[[measurements]]\nvalue = "abcd"\n', "fleet.toml:3: measurements.value: 2 bytes, expected 32"),
    ('[firmware]\nmin_api = 1.3\n', 'fleet.toml:3: firmware.min_api: expected "MAJOR.MINOR"'),
    ('[guest_policy]\nrequire = ["NODEBUG"]\n', "fleet.toml:3: guest_policy.require: expected a list of policy bit names"),
    ('[[chips.deny]]\nchip = "X"\nsince = "yesterday"\n', "fleet.toml:4: chips.deny.since: expected a date"),
    ('[forensics]\nsealing_key_present = "error"\n', 'fleet.toml:3: forensics.sealing_key_present: expected "warn" or "fail"'),
    ("[chips\n", "not valid TOML"),
])
def test_policy_check_errors_name_line_and_key(run_cli, tmp_path, body, message):
    path = tmp_path / "fleet.toml"
    path.write_text("version = 1\n" + body)
    res = run_cli("policy", "check", path)
    assert res.exit_code == 1 and message in res.output, res.output
    assert "Traceback" not in res.output


def test_version_is_required(tmp_path):
    with pytest.raises(PolicyError, match="version: required"):
        parse_policy("require_chain = true\n", "p.toml")


def test_template_is_valid_and_documented(run_cli, tmp_path):
    res = run_cli("policy", "init")
    assert res.stdout == TEMPLATE
    path = tmp_path / "fleet.toml"
    path.write_text(res.stdout)
    assert run_cli("policy", "check", path).exit_code == 0
    loaded = load_policy(path)
    for key in ("require_chain", "measurements", "chips.deny", "guest_policy.require", "firmware.min_api",
                "forensics.sealing_key_present"):
        assert key in loaded.rules
    assert TEMPLATE.count("#") > 20


def test_policy_show_json(run_cli, env):
    pol = env["policy"]('require_chain = true\n[firmware]\nmin_api = "1.1"\n')
    doc = json.loads(run_cli("policy", "show", pol, "--json").stdout)
    assert doc["schema"] == "csvverify/policy/v1" and doc["sha256"] == load_policy(pol).sha256
    assert doc["rules"]["firmware.min_api"] == {"value": [1, 1], "from": f"{pol}:4"}
    assert "require_chain = true" in run_cli("policy", "show", pol).output


def test_bad_as_of_is_a_usage_error(run_cli, env):
    res = run_cli(env["report"]("r.cert"), "--as-of", "soon")
    assert res.exit_code == 2 and "--as-of" in res.output


def test_digest_emit_policy_snippet_is_a_valid_allowlist_entry(run_cli, tmp_path):
    firmware = tmp_path / "OVMF.fd"
    firmware.write_bytes(bytes(range(256)) * 256)
    res = run_cli("digest", "--ovmf", firmware, "--emit-policy", "--label", "image A")
    assert res.exit_code == 0, res.output
    digest_hex = run_cli("digest", "--ovmf", firmware).stdout.strip()
    path = tmp_path / "fleet.toml"
    path.write_text("version = 1\n" + res.stdout)
    (entry,) = load_policy(path).get("measurements")
    assert entry.value.hex() == digest_hex and entry.label == "image A"
