"""Appraisal policies: the file format, overrides, each rule's verdict and exit class, `csvverify policy …`."""

import json
import re
import textwrap
import tomllib
from pathlib import Path

import pytest

from csvverify.forge import DEFAULT_CHIP
from csvverify.hashing import hmac_sm3
from csvverify.policy import POLICY_BITS, SCHEMA, TEMPLATE, PolicyError, load_policy, parse_policy

REPO_DOCS = Path(__file__).resolve().parents[1] / "docs" / "policy.md"
USER_DATA = b"forge user data"  # what the forge puts in every report unless told otherwise
PIN = ["--expect-user-data", USER_DATA.hex()]  # an expectation on a decoded field: pins a V1 report's anonce


@pytest.fixture
def env(tmp_path, forge):
    root = tmp_path / "root.cert"
    root.write_bytes(forge.root_cert)
    hc = tmp_path / "hsk_cek.cert"
    hc.write_bytes(forge.hsk_cek())
    hc2 = tmp_path / "hsk_cek2.cert"
    hc2.write_bytes(forge.hsk_cek("DENIEDCHIP0002"))
    certs = tmp_path / "certs"  # collateral filed under the chip id, so that chip.binding can pass
    for chip in (DEFAULT_CHIP, "DENIEDCHIP0002"):
        (certs / chip).mkdir(parents=True)
        (certs / chip / "hsk_cek.cert").write_bytes(forge.hsk_cek(chip))

    def report(name, **kw):
        path = tmp_path / name
        path.write_bytes(forge.report(1, **kw))
        return path

    def policy(body):
        path = tmp_path / "fleet.toml"
        path.write_text("version = 1\n" + textwrap.dedent(body))
        return path

    return {"trust": ["--trust-root", root, "--hsk-cek", hc], "hc2": hc2, "report": report, "policy": policy,
            "bound": ["--trust-root", root, "--certs", certs], "root": root, "tmp": tmp_path}


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
    code, v = verdict_of(run_cli, report, *env["trust"], *PIN, "--policy", pol)
    c = check(v, "policy.guest_policy")
    assert c["status"] == status, c
    assert code == (0 if status == "pass" else 6)
    if status == "fail":
        assert "fleet.toml:" in c["reason"] and v["outcome"] == "fail"


def test_debug_needs_allow_debug(run_cli, env):
    report = env["report"]("r.cert", policy=0x0)
    pol = env["policy"]("[guest_policy]\nallow_debug = false\n")
    code, v = verdict_of(run_cli, report, *env["trust"], *PIN, "--policy", pol)
    assert code == 6 and "NODBG is clear" in check(v, "policy.guest_policy")["reason"]
    assert any(f["id"] == "debug-allowed" for f in v["findings"])
    code, v = verdict_of(run_cli, report, *env["trust"], *PIN, "--policy", pol, "--allow-debug")
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
    trust = env["bound"] + PIN
    pol = env["policy"]("""
        [[chips.deny]]
        chip = "DENIEDCHIP0002"
        since = 2026-10-01
        reason = "firmware key exposed"
        """)
    code, v = verdict_of(run_cli, report, *trust, "--policy", pol, "--as-of", "2026-09-30")
    assert code == 0 and check(v, "policy.chip")["status"] == "pass"
    assert v["policy"]["as_of"] == "2026-09-30T00:00:00+00:00"
    assert "(bound: chip.binding passed and the chain verified)" in check(v, "policy.chip")["reason"]
    code, v = verdict_of(run_cli, report, *trust, "--policy", pol, "--as-of", "2026-10-01T00:00:00Z")
    c = check(v, "policy.chip")
    assert code == 6 and c["status"] == "fail"
    assert "denied since 2026-10-01 (firmware key exposed)" in c["reason"] and "fleet.toml:" in c["reason"]
    code, v = verdict_of(run_cli, report, *trust, "--policy", pol, "--as-of", "2026-09-30T23:59:59-01:00")
    assert code == 6 and check(v, "policy.chip")["status"] == "fail"  # 2026-10-01T00:59:59Z


def test_allow_list_and_flag_override(run_cli, env):
    report = env["report"]("r.cert")
    pol = env["policy"]('[chips]\nallow = ["SOMEOTHERCHIP1"]\n')
    code, v = verdict_of(run_cli, report, *env["bound"], *PIN, "--policy", pol)
    assert code == 6 and "not on the allow list" in check(v, "policy.chip")["reason"]
    code, v = verdict_of(run_cli, report, *env["bound"], *PIN, "--policy", pol, "--allow-chip", "FORGE0CHIP0001")
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
    ("report_versions = [1.0, 2]\n", "fleet.toml:2: report_versions: expected a list of report versions"),
    ("report_versions = [true]\n", "fleet.toml:2: report_versions: expected a list of report versions"),
    ('[chips]\ndeny = [""]\n', "fleet.toml:3: chips.deny: expected a chip id"),
    ('[chips]\nallow = ["A", ""]\n', "fleet.toml:3: chips.allow: expected a list of chip ids"),
    ('[chips]\nallow = [" A"]\n', "fleet.toml:3: chips.allow: expected a list of chip ids"),
    ('[[chips.deny]]\nchip = ""\n', "fleet.toml:3: chips.deny.chip: expected a chip id"),
    ('[guest_policy]\nrequire = ["NOKS"]\nforbid = ["NOKS"]\n',
     "fleet.toml:4: guest_policy.forbid: NOKS is both required (fleet.toml:3) and forbidden (fleet.toml:4)"),
    ('[guest_policy]\nforbid = ["NODBG"]\n', "fleet.toml:3: guest_policy.forbid: NODBG is forbidden (fleet.toml:3)"),
    ('[guest_policy]\nallow_debug = true\n[forensics]\ndebug_allowed = "fail"\n',
     'fleet.toml:5: forensics.debug_allowed: "fail" (fleet.toml:5) contradicts allow_debug = true (fleet.toml:3)'),
    ("[expect]\nuser_data = []\n", "fleet.toml:3: expect.user_data: expected a non-empty list"),
    ("[[chips.deny]]\nchip = \"A\"\nsince = 0001-01-01T00:00:00+01:00\n", "fleet.toml:4: chips.deny.since: out of range"),
    ('[[chips.deny]]\nchip = "A"\nsince = "9999-12-31T23:00:00-05:00"\n', "fleet.toml:4: chips.deny.since: out of range"),
])
def test_policy_check_errors_name_line_and_key(run_cli, tmp_path, monkeypatch, body, message):
    monkeypatch.chdir(tmp_path)
    Path("fleet.toml").write_text("version = 1\n" + body)
    res = run_cli("policy", "check", "fleet.toml")
    assert res.exit_code == 1 and message in res.output, res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize("version", ["", "version = true\n", "version = 1.0\n", 'version = "1"\n', "version = 2\n"])
def test_version_is_required_and_the_integer_1(version):
    with pytest.raises(PolicyError, match="version: required, and must be the integer 1"):
        parse_policy(version + "require_chain = true\n", "p.toml")


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
    # Every key of the format is in the template (set, or commented out), and documented.
    live = tomllib.loads(TEMPLATE)
    template_keys = {k for table in live.values() if isinstance(table, dict) for k in table} | set(live)
    template_keys |= {k for item in live["measurements"] + live["chips"]["deny"] for k in item}
    template_keys |= set(re.findall(r"^# (\w+) = ", TEMPLATE, re.M))
    docs = REPO_DOCS.read_text()
    for table, keys in SCHEMA.items():
        for key in keys:
            assert key in template_keys, f"{table}.{key} is missing from the template"
            assert f"`{key}`" in docs, f"{table}.{key} is not documented in docs/policy.md"
    for table in SCHEMA:
        if table:
            assert f"[{table}]" in TEMPLATE and (f"[{table}]" in docs or f"[[{table}]]" in docs), table


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


# -- V1: the unsigned anonce (report-format.md §13.1) ------------------------------------------------

def anonce_attack(forge, policy_word=0x0, delta=1, **kw) -> bytes:
    """A genuine V1 report whose anonce is XORed with ``delta``: the unsigned PEK and SN are re-encoded
    and the MAC recomputed, so every cryptographic check still passes while every decoded field shifts."""
    raw = bytearray(forge.report(1, policy=policy_word, **kw))
    anonce = int.from_bytes(raw[188:192], "little") ^ delta
    raw[188:192] = anonce.to_bytes(4, "little")
    pattern = delta.to_bytes(4, "little")
    for i in list(range(180, 188)) + list(range(336, 2484)):  # sig_usage/sig_algo, PEK and SN keep their values
        raw[i] ^= pattern[i % 4]
    key = anonce.to_bytes(4, "little")
    mnonce = bytes(raw[128 + i] ^ key[i % 4] for i in range(16))
    raw[2516:2548] = hmac_sm3(mnonce, bytes(raw[336:2516]))
    return bytes(raw)


def test_anonce_attack_cannot_pass_guest_policy_bits(run_cli, env, forge, tmp_path):
    attack = tmp_path / "attack.cert"
    attack.write_bytes(anonce_attack(forge, policy_word=0x0))  # a debuggable guest made to decode as NODBG
    pol = env["policy"]('[guest_policy]\nrequire = ["NODBG"]\n')
    code, v = verdict_of(run_cli, attack, *env["trust"], "--policy", pol)
    for cid in ("pek.signature", "report.signature", "report.mac"):
        assert check(v, cid)["status"] == "pass", cid  # the attack defeats all cryptography
    assert v["report"]["policy"] & 1  # NODBG decodes as set
    c = check(v, "policy.guest_policy")
    assert code == 6 and c["status"] == "fail", c
    assert "decoded with the unsigned V1 anonce and no passing expectation on user data, mnonce or measure" in c["reason"]
    # An expectation on a decoded field catches the shift (and still does not let the bits pass):
    code, v = verdict_of(run_cli, attack, *env["trust"], *PIN, "--policy", pol)
    assert code == 5 and check(v, "expect.user_data")["status"] == "fail"
    assert check(v, "policy.guest_policy")["status"] == "fail"


@pytest.mark.parametrize("pin, body", [
    (PIN, ""),
    (["--expect-measure", "MEASURE"], ""),
    (["--expect-mnonce", "MNONCE"], ""),
    ([], '[expect]\nuser_data = ["%s"]\n' % USER_DATA.hex()),
    ([], '[expect]\nmnonce = ["MNONCE"]\n'),
    ([], '[[measurements]]\nvalue = "MEASURE"\nlabel = "image"\n'),
])
def test_a_passing_expectation_pins_the_anonce(run_cli, env, pin, body):
    report = env["report"]("r.cert")
    _, v = verdict_of(run_cli, report, "--no-chain")  # the decoded values (the raw bytes are obfuscated)
    measure, mnonce = v["report"]["measure"], v["report"]["mnonce"]
    fill = lambda text: text.replace("MEASURE", measure).replace("MNONCE", mnonce)
    pol = env["policy"](fill(body) + '[guest_policy]\nrequire = ["NODBG"]\n[chips]\nallow = ["%s"]\n'
                        '[forensics]\ndebug_allowed = "fail"\n' % DEFAULT_CHIP)
    code, v = verdict_of(run_cli, report, *env["bound"], *[fill(a) for a in pin], "--policy", pol)
    assert code == 0, [c for c in v["checks"] if c["status"] == "fail"]
    for cid in ("policy.guest_policy", "policy.chip", "policy.forensics"):
        assert check(v, cid)["status"] == "pass", cid
    code, v = verdict_of(run_cli, report, *env["bound"], "--policy", env["policy"](
        '[guest_policy]\nrequire = ["NODBG"]\n[chips]\nallow = ["%s"]\n[forensics]\ndebug_allowed = "fail"\n'
        % DEFAULT_CHIP))
    assert code == 6
    for cid in ("policy.guest_policy", "policy.forensics"):
        assert check(v, cid)["status"] == "fail" and "unsigned V1 anonce" in check(v, cid)["reason"], cid
    # A bound chip id needs no pin: the CEK filed under that id signed the PEK, whatever the anonce.
    assert check(v, "policy.chip")["status"] == "pass", check(v, "policy.chip")


def test_v2_decoded_fields_need_no_pin(run_cli, env, forge, tmp_path):
    v2 = tmp_path / "v2.bin"
    v2.write_bytes(forge.report(2))
    pol = env["policy"]('[guest_policy]\nrequire = ["NODBG"]\n')
    code, v = verdict_of(run_cli, v2, *env["trust"], "--policy", pol)
    assert code == 0 and check(v, "policy.guest_policy")["status"] == "pass"


# -- the chip id is outside every signature (§13.2) ------------------------------------------------

def test_chip_lists_pass_only_when_the_chip_is_bound(run_cli, env, tmp_path):
    report = env["report"]("r.cert")
    pol = env["policy"]('[[chips.deny]]\nchip = "DENIEDCHIP0002"\n')
    code, v = verdict_of(run_cli, report, *env["bound"], *PIN, "--policy", pol)
    assert code == 0 and check(v, "chip.binding")["status"] == "pass"
    code, v = verdict_of(run_cli, report, *env["trust"], *PIN, "--policy", pol)  # --hsk-cek: not filed by chip
    c = check(v, "policy.chip")
    assert code == 6 and c["status"] == "fail" and check(v, "chip.binding")["status"] == "skipped"
    assert "the chip id is not bound" in c["reason"] and "--certs DIR" in c["reason"]
    assert "certs import --chip-id" in c["reason"]
    code, v = verdict_of(run_cli, report, "--no-chain", *PIN, "--policy", pol)
    assert code == 6 and "the chain was not checked" in check(v, "policy.chip")["reason"]


def test_chip_lists_fail_when_the_chain_does_not_verify(run_cli, env, tmp_path, forge):
    """A denied chip's report re-labelled with another chip id: the lookup by that id finds a CEK that
    did not sign the PEK, so the chain fails and the deny list must not pass."""
    raw = bytearray(forge.report(1, chip_id="DENIEDCHIP0002"))
    key = raw[188:192]
    clear_sn = DEFAULT_CHIP.encode().ljust(64, b"\0")
    for i in range(64):
        raw[2420 + i] = clear_sn[i] ^ key[(2420 + i) % 4]
    mnonce = bytes(raw[128 + i] ^ key[i % 4] for i in range(16))
    raw[2516:2548] = hmac_sm3(mnonce, bytes(raw[336:2516]))
    relabelled = tmp_path / "relabelled.cert"
    relabelled.write_bytes(raw)
    pol = env["policy"]('[[chips.deny]]\nchip = "DENIEDCHIP0002"\n')
    code, v = verdict_of(run_cli, relabelled, *env["bound"], *PIN, "--policy", pol)
    c = check(v, "policy.chip")
    assert check(v, "pek.signature")["status"] == "fail"
    assert c["status"] == "fail" and "the chain to a trusted root did not verify" in c["reason"]


# -- debugging, and rules whose input is missing ---------------------------------------------------

def test_nodbg_is_required_under_any_policy(run_cli, env):
    debuggable = env["report"]("d.cert", policy=0x0)
    pol = env["policy"]("require_chain = true\n")  # no guest_policy table at all
    code, v = verdict_of(run_cli, debuggable, *env["trust"], *PIN, "--policy", pol)
    c = check(v, "policy.guest_policy")
    assert code == 6 and c["status"] == "fail" and "the default under any policy" in c["reason"]
    code, v = verdict_of(run_cli, debuggable, *env["trust"], *PIN, "--min-api", "1.0")  # flags only
    assert code == 6 and check(v, "policy.guest_policy")["status"] == "fail"
    code, v = verdict_of(run_cli, env["report"]("n.cert"), *env["trust"], *PIN, "--policy", pol)
    c = check(v, "policy.guest_policy")
    assert code == 0 and c["status"] == "pass" and "NODBG is set" in c["reason"]


@pytest.mark.parametrize("body, args, message", [
    ("[firmware]\nmin_build = 1\n", ["TRUST"], "V1 reports carry no firmware build"),
    ("[firmware]\nmin_hsk_version = 1\n", ["--no-chain"], "the HSK certificate's version needs the chain"),
    ("[firmware]\nmin_cek_version = 1\n", ["--no-chain"], "the CEK certificate's version needs the chain"),
    ('[firmware]\nmin_api = "1.0"\n', ["--no-chain"], "the firmware API in the PEK certificate"),
])
def test_a_rule_whose_input_is_missing_fails(run_cli, env, body, args, message):
    args = [a for arg in args for a in (env["trust"] if arg == "TRUST" else [arg])]
    code, v = verdict_of(run_cli, env["report"]("r.cert"), *args, *PIN, "--policy", env["policy"](body))
    c = check(v, "policy.firmware")
    assert code == 6 and c["status"] == "fail" and message in c["reason"] and "cannot be checked" in c["reason"], c


def test_min_api_from_a_chained_pek_passes(run_cli, env):
    code, v = verdict_of(run_cli, env["report"]("r.cert"), *env["trust"], *PIN, "--policy",
                         env["policy"]('[firmware]\nmin_api = "1.3"\nmin_hsk_version = 1\nmin_cek_version = 2\n'))
    assert code == 0 and check(v, "policy.firmware")["status"] == "pass"


# -- values files ----------------------------------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    (b"", "fleet.toml:3: expect.user_data_file: VALUES holds no values"),
    (b"# only a comment\n\n", "fleet.toml:3: expect.user_data_file: VALUES holds no values"),
    (b"\xa3\x01binary", "fleet.toml:3: expect.user_data_file: VALUES is not UTF-8 text (byte 0xa3 at offset 0)"),
    (b"00ff\nnothex\n", "fleet.toml:3: expect.user_data_file: VALUES:2: 'nothex' is not hex"),
])
def test_values_file_errors_name_policy_line_key_and_file_line(run_cli, tmp_path, content, message):
    values = tmp_path / "values.txt"
    values.write_bytes(content)
    path = tmp_path / "fleet.toml"
    path.write_text('version = 1\n[expect]\nuser_data_file = "values.txt"\n')
    res = run_cli("policy", "check", path)
    assert res.exit_code == 1 and message.replace("VALUES", str(values)) in res.output, res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize("quantity, value", [("user_data", "00ff"), ("mnonce", "11" * 16)])
@pytest.mark.parametrize("file_first", [True, False])
def test_values_file_and_list_merge_in_either_order(tmp_path, quantity, value, file_first):
    (tmp_path / "values.txt").write_text(("22" * 16) + "\n")
    lines = [f'{quantity}_file = "values.txt"', f'{quantity} = ["{value}"]']
    path = tmp_path / "fleet.toml"
    path.write_text("version = 1\n[expect]\n" + "\n".join(lines if file_first else lines[::-1]) + "\n")
    size = 64 if quantity == "user_data" else 16
    got = load_policy(path).rules[f"expect.{quantity}"]
    assert set(got.value) == {bytes.fromhex(value).ljust(size, b"\0"), bytes.fromhex("22" * 16).ljust(size, b"\0")}
    assert got.origin == f"{path}:3 + {path}:4"  # in the file's order


# -- command-line flags ----------------------------------------------------------------------------

def test_list_flags_add_to_the_file(run_cli, env):
    report = env["report"]("r.cert", policy=0x1)  # NODBG only
    pol = env["policy"]('[guest_policy]\nrequire = ["NODBG"]\nforbid = ["NOSEND"]\n'
                        '[[chips.deny]]\nchip = "DENIEDCHIP0002"\n')
    code, v = verdict_of(run_cli, report, *env["bound"], *PIN, "--policy", pol, "--require-bit", "NOKS",
                         "--forbid-bit", "DOMAIN", "--deny-chip", DEFAULT_CHIP)
    rules = v["policy"]["rules"]
    assert rules["guest_policy.require"] == {"value": ["NODBG", "NOKS"], "from": f"{pol}:3 + --require-bit"}
    assert rules["guest_policy.forbid"] == {"value": ["NOSEND", "DOMAIN"], "from": f"{pol}:4 + --forbid-bit"}
    assert [e["chip"] for e in rules["chips.deny"]["value"]] == ["DENIEDCHIP0002", DEFAULT_CHIP]
    assert rules["chips.deny"]["from"] == f"{pol}:5 + --deny-chip"
    gp = check(v, "policy.guest_policy")["reason"]
    assert code == 6 and "NOKS is NOT set (required by" in gp
    assert "is denied" in check(v, "policy.chip")["reason"]
    code, v = verdict_of(run_cli, env["report"]("s.cert", policy=0xB), *env["bound"], *PIN, "--policy", pol,
                         "--require-bit", "NOKS", "--forbid-bit", "DOMAIN")  # NODBG NOKS NOSEND
    assert code == 6 and check(v, "policy.guest_policy")["reason"] == f"NOSEND IS set (forbidden by {pol}:4 + --forbid-bit)"
    # A flag naming a chip the file denies does not lift the file's denial.
    code, v = verdict_of(run_cli, env["report"]("d.cert", chip_id="DENIEDCHIP0002"), *env["bound"], *PIN,
                         "--policy", pol, "--deny-chip", "OTHERCHIP")
    assert code == 6 and "'DENIEDCHIP0002' is denied" in check(v, "policy.chip")["reason"]


def test_deny_chip_help_does_not_promise_a_date(run_cli):
    out = " ".join(run_cli("verify", "--help").output.split())
    assert "from now on" not in out and "added to the file's deny list" in out
    assert "replaces the file's allow list" in out


@pytest.mark.parametrize("args, message", [
    (["--as-of", "0001-01-01T00:00:00+01:00"], "out of range"),
    (["--as-of", "9999-12-31T23:00:00-05:00"], "out of range"),
    (["--as-of", ""], "--as-of '': empty"),
    (["--as-of", "   "], "--as-of '   ': empty"),
    (["--deny-chip", ""], "--deny-chip '': expected a chip id"),
    (["--allow-chip", " X"], "--allow-chip ' X': expected a chip id"),
    (["--require-bit", "NOSEND", "--forbid-bit", "NOSEND"], "NOSEND is both required (--require-bit)"),
    (["--forbid-bit", "NODBG"], "NODBG is forbidden (--forbid-bit)"),
    (["--min-api", "1"], "--min-api '1'"),
])
def test_bad_policy_flags_are_usage_errors(run_cli, env, args, message):
    res = run_cli(env["report"]("r.cert"), "--min-build", "1", *args)
    assert res.exit_code == 2 and message in res.output, res.output
    assert "Traceback" not in res.output


def test_as_of_without_a_policy_is_a_usage_error(run_cli, env):
    res = run_cli(env["report"]("r.cert"), "--as-of", "2026-10-01")
    assert res.exit_code == 2 and "--as-of dates the policy's rules, but no policy is given" in res.output


def test_flags_contradicting_the_file_are_usage_errors(run_cli, env):
    pol = env["policy"]('[guest_policy]\nforbid = ["NOKS"]\n[forensics]\ndebug_allowed = "fail"\n')
    res = run_cli(env["report"]("r.cert"), "--policy", pol, "--require-bit", "NOKS")
    assert res.exit_code == 2 and f"NOKS is both required (--require-bit) and forbidden ({pol}:3)" in res.output
    res = run_cli(env["report"]("r.cert"), "--policy", pol, "--allow-debug")
    assert res.exit_code == 2 and "contradicts allow_debug = true (--allow-debug)" in res.output


def test_policy_bit_names_of_the_cli_are_the_policy_bits():
    from csvverify.cli import POLICY_BIT_NAMES

    assert POLICY_BIT_NAMES == POLICY_BITS


# -- line numbers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("quote", ["'''", '"""'])
def test_line_numbers_skip_multi_line_strings(tmp_path, quote):
    path = tmp_path / "fleet.toml"
    path.write_text(f'version = 1\nname = {quote}\n[[measurements]]\nvalue = "notes"\n{quote}\n'
                    f'[[measurements]]\nvalue = "zz"\n')
    with pytest.raises(PolicyError, match=r"fleet.toml:7: measurements.value: 'zz' is not hex"):
        load_policy(path)


def test_line_numbers_skip_open_arrays(tmp_path):
    path = tmp_path / "fleet.toml"
    path.write_text('version = 1\n[chips]\nallow = [\n  "X",\n  "deny = y",\n]\ndeny = [""]\n')
    with pytest.raises(PolicyError, match=r"fleet.toml:7: chips.deny: expected a chip id"):
        load_policy(path)


# -- forensic flags --------------------------------------------------------------------------------

@pytest.mark.parametrize("policy_word, raised", [
    (0x00040001, True),   # API_MAJOR 4 > the PEK's 1.3
    (0x04010001, True),   # API 1.4 > 1.3
    (0x03010001, False),  # API 1.3: what the platform has
    (0x0000FF01, False),  # HSK/CEK minimum versions constrain migration targets: not compared
])
def test_policy_fields_implausible_reads_the_api_fields(run_cli, env, forge, tmp_path, policy_word, raised):
    v2 = tmp_path / "v2.bin"
    v2.write_bytes(forge.report(2, policy=policy_word))
    pol = env["policy"]('[forensics]\npolicy_fields_implausible = "fail"\n')
    code, v = verdict_of(run_cli, v2, *env["trust"], "--policy", pol)
    assert any(f["id"] == "policy-fields-implausible" for f in v["findings"]) is raised
    assert check(v, "policy.forensics")["status"] == ("fail" if raised else "pass")
    assert code == (6 if raised else 0)


def test_mac_not_checkable_is_the_skipped_mac_check(run_cli, env):
    blanked = env["report"]("b.cert", sealing_key=bytes(32))
    pol = env["policy"]('[forensics]\nmac_not_checkable = "fail"\n')
    code, v = verdict_of(run_cli, blanked, *env["trust"], *PIN, "--policy", pol)
    assert check(v, "report.mac")["status"] == "skipped"
    assert code == 6 and "mac_not_checkable" in check(v, "policy.forensics")["reason"]
    code, v = verdict_of(run_cli, env["report"]("r.cert"), *env["trust"], *PIN, "--policy", pol)
    assert code == 0 and check(v, "policy.forensics")["status"] == "pass"
