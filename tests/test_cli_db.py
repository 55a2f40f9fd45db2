"""The `db` commands: status, path, list, show, export, check, reappraise, duplicates, backup."""

import csv
import io
import json
import re
import sqlite3
from pathlib import Path

import pytest
from test_archive_support import make_corpus, report_bytes, rows, scalar

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
TRUST = ["--hsk-cek", SAMPLES / "hsk_cek.cert", "--trust-root", SAMPLES / "test-root.cert"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("db"), 24, chips=3)


@pytest.fixture
def archive(run_cli, corpus, tmp_path):
    """24 passing reports over 3 chips, a tampered one and a garbage file, audited into tmp_path/a.db."""
    extra = tmp_path / "extra"
    extra.mkdir()
    bad = bytearray(report_bytes(500, chips=3))
    bad[50] ^= 0xFF
    (extra / "tampered.cert").write_bytes(bytes(bad))
    (extra / "garbage.bin").write_bytes(b"\x01" * 300)
    db = tmp_path / "a.db"
    res = run_cli("audit", corpus.reports, extra, *corpus.options, "--db", db, "--jobs", "1")
    assert res.exit_code == 3, res.output
    return db


def test_path_and_status(run_cli, archive, isolated_home):
    assert run_cli("db", "path").output.strip() == str(isolated_home / "archive.db")
    assert run_cli("db", "path", "--db", archive).output.strip() == str(archive)
    res = run_cli("db", "status", "--db", archive)
    assert res.exit_code == 0
    assert "verdicts    26  (error 1, fail 1, pass 24)" in res.output and "chain head  verdict 26:" in res.output
    doc = json.loads(run_cli("db", "status", "--db", archive, "--json").output)
    assert doc["verdicts"] == 26 and doc["chips"] == 3 and doc["migrations"] == [
        "m001_initial", "m002_report_coverage", "m003_verdicts_chip_outcome", "m004_reports_chip_vm"]
    assert doc["head"]["hash"] == scalar(archive, "SELECT hash FROM verdicts WHERE id = 26")
    assert run_cli("db", "--db", archive).output == res.output  # status is the default


def test_no_archive_yet(run_cli, tmp_path):
    res = run_cli("db", "status", "--db", tmp_path / "none.db")
    assert res.exit_code == 7 and "no archive here yet" in res.output
    assert not (tmp_path / "none.db").exists()


def test_list_filters(run_cli, archive):
    res = run_cli("db", "list", "--db", archive)
    lines = res.output.splitlines()
    assert lines[0].split()[:3] == ["id", "time", "outcome"] and len(lines) == 21  # header + 20 newest
    assert lines[1].split()[0] == "26"
    everything = json.loads(run_cli("db", "list", "--db", archive, "-n", "0", "--json").output)
    assert len(everything) == 26 and [v["id"] for v in everything] == list(range(26, 0, -1))
    chip = everything[-1]["chip_id"]
    by_chip = json.loads(run_cli("db", "list", "--db", archive, "--chip", chip, "-n", "0", "--json").output)
    assert by_chip and {v["chip_id"] for v in by_chip} == {chip}
    assert len(by_chip) == sum(v["chip_id"] == chip for v in everything)
    fails = json.loads(run_cli("db", "list", "--db", archive, "--outcome", "fail", "--json").output)
    assert [v["failed_checks"] for v in fails] == [["report.signature"]]
    by_check = json.loads(run_cli("db", "list", "--db", archive, "--check", "format", "--json").output)
    assert [v["outcome"] for v in by_check] == ["error"]
    assert json.loads(run_cli("db", "list", "--db", archive, "--since", "2999-01-01", "--json").output) == []
    assert len(json.loads(run_cli("db", "list", "--db", archive, "--since", "1d", "-n", "5", "--json").output)) == 5
    assert run_cli("db", "list", "--db", archive, "--chip", "NOSUCHCHIP").output.strip() == "no verdicts match"
    res = run_cli("db", "list", "--db", archive, "--check", "report.nonsense")
    assert res.exit_code == 2
    for since, why in [("yesterday-ish", "not a date"), ("", "empty"), ("99999999999d", "before the year 1"),
                       ("999999d", "before the year 1")]:
        res = run_cli("db", "list", "--db", archive, "--since", since)
        assert res.exit_code == 2 and why in res.output and "Traceback" not in res.output, (since, res.output)


def test_show(run_cli, archive):
    fail_id = scalar(archive, "SELECT id FROM verdicts WHERE outcome = 'fail'")
    res = run_cli("db", "show", fail_id, "--db", archive)
    assert res.exit_code == 0
    assert res.output.startswith(f"verdict {fail_id}: fail (exit class 3)")
    assert re.search(r"FAIL  report\.signature\s+report signature over \[0,180\)", res.output)
    assert "seen at" in res.output and "hash        " in res.output
    doc = json.loads(run_cli("db", "show", fail_id, "--db", archive, "--json").output)
    assert doc["outcome"] == "fail" and len(doc["checks"]) == scalar(archive, "SELECT COUNT(*) FROM checks "
                                                                              "WHERE verdict_id = ?", (fail_id,))
    assert doc["report"]["chip_id"].startswith("AUDITCHIP") and doc["settings"]["chain"] is True
    res = run_cli("db", "show", "999", "--db", archive)
    assert res.exit_code == 1 and "no verdict 999" in res.output


def test_show_and_status_escape_every_field_of_an_edited_archive(run_cli, archive):
    """An archive is a file anyone may have edited: no field of it reaches the terminal raw, also those
    csvverify itself always writes plainly (collateral sources, container, times)."""
    vid = scalar(archive, "SELECT id FROM verdicts WHERE outcome = 'pass' LIMIT 1")
    conn = sqlite3.connect(archive)
    conn.execute("UPDATE verdicts SET collateral = ?, appraised_at = ? WHERE id = ?",
                 (json.dumps({"hsk": "x\x1b[2Jy", "cek": "c"}), "2026\x1b]0;t\x07", vid))
    conn.execute("UPDATE reports SET container = 'raw\x1b[31m' WHERE sha256 = (SELECT report_sha256 FROM verdicts "
                 "WHERE id = ?)", (vid,))
    conn.commit()
    conn.close()
    shown = run_cli("db", "show", vid, "--db", archive).output
    assert "\x1b" not in shown and "HSK x\\x1b[2Jy" in shown and "raw\\x1b[31m" in shown
    assert "2026\\x1b]0;t\\x07" in shown
    status = run_cli("db", "status", "--db", archive).output  # the edited time sorts first: the period starts there
    assert "\x1b" not in status and "period      2026\\x1b]0;t\\x07" in status


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl", "html"])
def test_export(run_cli, archive, tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    res = run_cli("db", "export", "--db", archive, "--format", fmt, "-o", out)
    assert res.exit_code == 0 and f"exported 26 verdicts to {out}" in res.stderr
    text = out.read_text()
    if fmt == "csv":
        table = list(csv.DictReader(io.StringIO(text)))
        assert len(table) == 26 and table[0]["id"] == "1" and {r["outcome"] for r in table} == {"pass", "fail", "error"}
    elif fmt == "json":
        doc = json.loads(text)
        assert doc["schema"] == "csvverify/archive-export/v1" and len(doc["verdicts"]) == 26
        assert all(len(v["checks"]) == len(doc["verdicts"][0]["checks"]) for v in doc["verdicts"])
    elif fmt == "jsonl":
        lines = [json.loads(line) for line in text.splitlines()]
        assert [v["id"] for v in lines] == list(range(1, 27)) and lines[0]["hash"]
    else:
        assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
        # self-contained: nothing that a browser would fetch
        assert not re.search(r"https?://|<script|<link|src=|@import|url\(", text)
        assert "<h2>Failing checks</h2>" in text and "report.signature" in text and "<h2>Per chip" in text
        assert "<h2>Per measure" in text and "AUDITCHIP0000" in text


def test_export_filters_and_stdout(run_cli, archive):
    res = run_cli("db", "export", "--db", archive, "--format", "jsonl", "-o", "-", "--outcome", "pass")
    assert len(res.stdout.splitlines()) == 24
    res = run_cli("db", "export", "--db", archive, "--format", "csv", "-o", "/nonexistent/dir/out.csv")
    assert res.exit_code != 0 and "cannot be written" in res.output


def test_check_clean_and_broken(run_cli, archive):
    res = run_cli("db", "check", "--db", archive)
    assert res.exit_code == 0 and res.output.startswith("intact: 26 verdicts")
    head = scalar(archive, "SELECT hash FROM verdicts WHERE id = 10")
    assert run_cli("db", "check", "--db", archive, "--expect-head", head).exit_code == 0
    conn = sqlite3.connect(archive)
    conn.execute("UPDATE verdicts SET outcome = 'pass', exit_class = 0, failed_checks = '' WHERE outcome = 'fail'")
    conn.commit()
    conn.close()
    res = run_cli("db", "check", "--db", archive)
    assert res.exit_code == 3 and res.output.startswith("BROKEN") and "edit: verdict" in res.output
    doc = json.loads(run_cli("db", "check", "--db", archive, "--json").output)
    assert doc["intact"] is False and doc["problems"][0]["kind"] == "edit"


def corpus_options(archive: Path) -> list:
    """The chain options the archive was audited with (its corpus directory is in the stored settings)."""
    root = Path(json.loads(scalar(archive, "SELECT description FROM settings"))["collateral"]["certs_dir"]).parent
    return ["--chain", "--certs", root / "certs", "--trust-root", root / "test-root.cert"]


def test_reappraise_flips(run_cli, archive):
    before = rows(archive, "SELECT id, hash FROM verdicts ORDER BY id")
    measure = "ab" * 32
    options = corpus_options(archive)
    res = run_cli("db", "reappraise", "--db", archive, *options, "--expect-measure", measure, "--json")
    assert res.exit_code == 3, res.output  # the tampered report still fails its signature
    doc = json.loads(res.stdout)
    # 24 good reports flip pass -> fail; the tampered one stays fail; the garbage has no stored bytes
    assert doc["flips"] == [{"from": "pass", "to": "fail", "count": 24}]
    assert doc["outcomes"] == {"fail": {"new": 25, "already_archived": 0}} and doc["reports_without_bytes"] == 1
    assert rows(archive, "SELECT id, hash FROM verdicts WHERE id <= 26 ORDER BY id") == before  # nothing rewritten
    assert scalar(archive, "SELECT COUNT(*) FROM verdicts WHERE reappraises IS NOT NULL") == 25
    flipped = doc["flipped"][0]
    assert scalar(archive, "SELECT reappraises FROM verdicts WHERE id = ?", (flipped["new_verdict_id"],)) == \
        flipped["baseline_verdict_id"]
    again = json.loads(run_cli("db", "reappraise", "--db", archive, *options, "--expect-measure", measure,
                               "--json").stdout)
    assert again["outcomes"]["fail"] == {"new": 0, "already_archived": 25} and again["flips"] == doc["flips"]
    assert scalar(archive, "SELECT COUNT(*) FROM verdicts") == 51
    text = run_cli("db", "reappraise", "--db", archive, *options, "--dry-run").output
    assert "reappraise (dry run)" in text and scalar(archive, "SELECT COUNT(*) FROM verdicts") == 51
    assert run_cli("db", "check", "--db", archive).exit_code == 0


def test_reappraise_dry_run_writes_nothing(run_cli, archive):
    res = run_cli("db", "reappraise", "--db", archive, *corpus_options(archive), "--expect-mnonce", "00" * 16,
                  "--dry-run", "--json")
    doc = json.loads(res.stdout)
    assert doc["run_id"] is None and doc["flips"] == [{"from": "pass", "to": "fail", "count": 24}]
    assert scalar(archive, "SELECT COUNT(*) FROM verdicts") == 26 and scalar(archive, "SELECT COUNT(*) FROM runs") == 1


def test_reappraise_with_policy(run_cli, archive):
    """A chip denied by policy: its passing verdicts flip to fail (policy class); the policy hash is recorded.
    The measures are pinned: a policy accepts V1 decoded fields (the guest policy word) only when an
    expectation pins the unsigned anonce."""
    chip = scalar(archive, "SELECT chip_id FROM verdicts WHERE outcome = 'pass' LIMIT 1")
    passing = scalar(archive, "SELECT COUNT(*) FROM verdicts WHERE chip_id = ? AND outcome = 'pass'", (chip,))
    pins = [a for (m,) in rows(archive, "SELECT DISTINCT measure FROM reports WHERE measure IS NOT NULL")
            for a in ("--expect-measure", m)]
    res = run_cli("db", "reappraise", "--db", archive, *corpus_options(archive), *pins, "--deny-chip", chip, "--json")
    doc = json.loads(res.stdout)
    assert res.exit_code == 3  # the tampered report (signature) still outranks the policy failures
    assert doc["flips"] == [{"from": "pass", "to": "fail", "count": passing}]
    assert rows(archive, "SELECT DISTINCT exit_class FROM verdicts WHERE reappraises IS NOT NULL AND chip_id = ? "
                         "AND outcome = 'fail' AND failed_checks = 'policy.chip'", (chip,)) == [(6,)]
    policy = rows(archive, "SELECT DISTINCT policy_sha256 FROM verdicts WHERE reappraises IS NOT NULL")
    assert len(policy) == 1 and len(policy[0][0]) == 64
    assert rows(archive, "SELECT DISTINCT policy_sha256 FROM verdicts WHERE reappraises IS NULL") == [(None,)]


def test_duplicates(run_cli, tmp_path):
    ev = tmp_path / "ev"
    ev.mkdir()
    mnonce = bytes(16)
    (ev / "a.cert").write_bytes(report_bytes(1, user_data=b"one", mnonce=mnonce))
    (ev / "b.cert").write_bytes(report_bytes(2, user_data=b"two", mnonce=mnonce))
    (ev / "b2.cert").write_bytes((ev / "b.cert").read_bytes())
    (ev / "c.cert").write_bytes(report_bytes(3, user_data=b"one"))
    for i in range(4):
        (ev / f"vm{i}.cert").write_bytes(report_bytes(9, chips=1, user_data=b"vm %d" % i, vm_id=bytes([i]) * 16))
    corpus = make_corpus(tmp_path / "c", 0, chips=4)
    db = tmp_path / "a.db"
    run_cli("audit", ev, *corpus.options, "--db", db)
    doc = json.loads(run_cli("db", "duplicates", "--db", db, "--vm-threshold", "3", "--json").output)
    assert doc["mnonce"]["groups"] == 1 and doc["mnonce"]["shown"][0] == doc["mnonce"]["shown"][0] | {
        "value": "00" * 16, "count": 2}
    assert {e["path"] for e in doc["mnonce"]["shown"][0]["examples"]} <= {str(ev / n) for n in ("a.cert", "b.cert",
                                                                                             "b2.cert")}
    assert doc["user_data"]["groups"] == 1 and doc["user_data"]["shown"][0]["count"] == 2
    assert doc["paths"]["shown"][0]["count"] == 2
    assert doc["chip_vms"]["groups"] == 1 and doc["chip_vms"]["shown"][0]["count"] == 4  # chip 0: vm0..vm3
    text = run_cli("db", "duplicates", "--db", db).output
    assert "mnonce reused across different reports: 1" in text and "chip under many VM ids (more than 16): 0" in text


def test_backup(run_cli, archive, tmp_path):
    copy = tmp_path / "copy.db"
    res = run_cli("db", "backup", copy, "--db", archive)
    assert res.exit_code == 0 and copy.exists()
    assert run_cli("db", "check", "--db", copy).output == run_cli("db", "check", "--db", archive).output
    res = run_cli("db", "backup", copy, "--db", archive)
    assert res.exit_code == 7 and "already exists" in res.output


def test_reappraise_carries_over_the_trust_settings(run_cli, archive, tmp_path):
    """`db reappraise --policy new.toml` alone (the issue's example): the chain, certificate and trust-root
    options of the stored verdicts carry over, so a chain failure stays a failure instead of turning into a
    pass under settings that no longer check the chain."""
    no_certs = tmp_path / "no-certs"
    no_certs.mkdir()
    (no_certs / "stranger.cert").write_bytes(report_bytes(7, chips=9))  # AUDITCHIP0007: no certificates for it
    run_cli("audit", no_certs, *corpus_options(archive), "--db", archive)
    stranger = scalar(archive, "SELECT failed_checks FROM verdicts WHERE path LIKE '%stranger.cert'")
    assert "collateral" in stranger.split()
    policy = tmp_path / "new.toml"
    policy.write_text('version = 1\n[firmware]\nmin_api = "1.0"\n')
    res = run_cli("db", "reappraise", "--db", archive, "--policy", policy, "--json")
    doc = json.loads(res.stdout)
    _, _, certs, _, root = corpus_options(archive)
    assert doc["carried_over"] == ["--chain", f"--certs {certs}", f"--trust-root {root}"]
    assert doc["weaker_than_stored"] == []
    new = "FROM verdicts WHERE reappraises IS NOT NULL"
    assert rows(archive, f"SELECT DISTINCT chain, trust_roots {new}") == rows(
        archive, "SELECT DISTINCT chain, trust_roots FROM verdicts WHERE reappraises IS NULL")
    assert "collateral" in scalar(archive, f"SELECT failed_checks {new} AND path LIKE '%stranger.cert'").split()
    assert scalar(archive, f"SELECT COUNT(*) {new} AND failed_checks LIKE '%hsk.signature%'") == 0
    text = run_cli("db", "reappraise", "--db", archive, "--policy", policy).output
    assert f"carried over from the stored verdicts' settings: --chain, --certs {certs}, --trust-root {root}" in text


@pytest.mark.parametrize("moved", ["root", "certs"])
def test_reappraise_with_carried_options_that_no_longer_work(run_cli, tmp_path, moved):
    """A stored trust-root file or certificate directory moved away since: a usage error naming what was
    carried over, whether the CLI or the re-appraisal itself finds the problem, never a traceback."""
    import shutil

    certs = tmp_path / "certs"
    (certs / "FORGE0CHIP0001").mkdir(parents=True)
    shutil.copy(SAMPLES / "hsk_cek.cert", certs / "FORGE0CHIP0001" / "hsk_cek.cert")
    root = tmp_path / "root.cert"
    shutil.copy(SAMPLES / "test-root.cert", root)
    db = tmp_path / "a.db"
    assert run_cli("audit", SAMPLES / "v1-blanked.cert", "--chain", "--certs", certs, "--trust-root", root,
                   "--db", db).exit_code == 0
    if moved == "root":
        root.unlink()
    else:
        shutil.rmtree(certs)
    res = run_cli("db", "reappraise", "--db", db)
    assert res.exit_code == 2
    assert f"the options carried over from the stored verdicts (--chain, --certs {certs}, --trust-root {root}) " \
           "cannot be used: " in res.output
    assert "hint: give the chain, trust-root and expectation options explicitly" in res.output
    assert scalar(db, "SELECT COUNT(*) FROM verdicts") == 1


def _counts(db):
    return scalar(db, "SELECT COUNT(*) FROM verdicts"), scalar(db, "SELECT COUNT(*) FROM runs")


def test_reappraise_refuses_weaker_settings(run_cli, archive, tmp_path):
    before = _counts(archive)
    other_root = SAMPLES / "other-root" / "test-root.cert"
    res = run_cli("db", "reappraise", "--db", archive, "--trust-root", other_root)
    assert res.exit_code == 2 and "trust root(s) of the baseline are no longer trusted" in res.output
    assert "--weaker" in res.output and _counts(archive) == before
    doc = json.loads(run_cli("db", "reappraise", "--db", archive, "--trust-root", other_root, "--weaker",
                             "--dry-run", "--json").stdout)
    assert "1 trust root(s) are trusted that the baseline did not trust" in doc["weaker_than_stored"]
    res = run_cli("db", "reappraise", "--db", archive, "--no-chain", "--dry-run", "--json")
    assert res.exit_code != 2  # an explicit --no-chain is consent enough for the chain
    assert json.loads(res.stdout)["weaker_than_stored"] == ["the certificate chain is no longer checked (--no-chain)"]
    policy = tmp_path / "p.toml"
    policy.write_text('version = 1\n[firmware]\nmin_api = "1.0"\n')
    run_cli("db", "reappraise", "--db", archive, "--policy", policy)
    res = run_cli("db", "reappraise", "--db", archive, "--expect-mnonce", "00" * 16)
    assert res.exit_code == 2 and "appraisal policy is no longer applied" in res.output


def test_reappraise_without_recorded_options(run_cli, archive):
    """Runs that did not record their options: only what the settings description holds carries over; the
    trust-root file is not among it, and the dropped root is refused, not silently lost."""
    conn = sqlite3.connect(archive)
    conn.execute("UPDATE runs SET arguments = '{}'")
    conn.commit()
    conn.close()
    res = run_cli("db", "reappraise", "--db", archive, "--expect-mnonce", "00" * 16)
    assert res.exit_code == 2 and "no longer trusted" in res.output
    root = corpus_options(archive)[-1]
    res = run_cli("db", "reappraise", "--db", archive, "--expect-mnonce", "00" * 16, "--trust-root", root, "--json")
    doc = json.loads(res.stdout)
    assert res.exit_code == 3 and doc["carried_over"][0] == "--chain"
    assert doc["flips"] == [{"from": "pass", "to": "fail", "count": 24}]


def test_reappraise_refuses_disagreeing_baselines(run_cli, archive, tmp_path):
    more = tmp_path / "more"
    more.mkdir()
    (more / "x.cert").write_bytes(report_bytes(600, chips=3))
    run_cli("audit", more, "--no-chain", "--db", archive)
    res = run_cli("db", "reappraise", "--db", archive, "--expect-mnonce", "00" * 16)
    assert res.exit_code == 2 and "disagree on --chain" in res.output


def test_csv_export_is_spreadsheet_safe(run_cli, tmp_path):
    """Chip ids come from the (unsigned) report: one that starts a formula is exported as text."""
    ev = tmp_path / "ev"
    ev.mkdir()
    for i, chip in enumerate(("=1+2", "@SUM(A1)", "-3", "+4")):
        (ev / f"r{i}.cert").write_bytes(report_bytes(i, chip_id=chip))
    db = tmp_path / "a.db"
    run_cli("audit", ev, "--no-chain", "--db", db)
    run_cli("audit", SAMPLES / "v1-blanked.cert", *TRUST, "--db", db)
    text = run_cli("db", "export", "--db", db, "--format", "csv", "-o", "-").stdout
    table = list(csv.DictReader(io.StringIO(text)))
    assert {r["chain"] for r in table} == {"0", "1"}  # 0/1 as documented, not False/True
    assert sorted(r["chip_id"] for r in table if r["chain"] == "0") == ["'+4", "'-3", "'=1+2", "'@SUM(A1)"]
    from csvverify.export import _cell

    assert [_cell(v) for v in ("=1+2", "+1", "-1", "@A", "\tx", "\rx", "/ok", 3, None)] == [
        "'=1+2", "'+1", "'-1", "'@A", "'\tx", "'\rx", "/ok", 3, ""]


def test_list_by_chip_and_outcome_uses_its_index(archive):
    from csvverify.archive import Archive
    from csvverify.archive_query import Filters

    conn = Archive(archive, create=False).conn
    where, args = Filters(chip="AUDITCHIP0001", outcome="fail").where()
    plan = " ".join(str(r[-1]) for r in conn.execute(
        f"EXPLAIN QUERY PLAN SELECT v.id FROM verdicts v{where} ORDER BY v.id DESC LIMIT 20", args))
    assert "verdicts_chip_outcome" in plan and "TEMP B-TREE" not in plan


def test_db_head_and_expect_head(run_cli, archive):
    res = run_cli("db", "head", "--db", archive)
    head = res.stdout.strip()
    assert res.exit_code == 0 and head == f"26:{scalar(archive, 'SELECT hash FROM verdicts WHERE id = 26')}"
    doc = json.loads(run_cli("db", "head", "--db", archive, "--json").stdout)
    assert doc["verdicts"] == 26 and doc["expect_head"] == head
    assert run_cli("db", "check", "--db", archive, "--expect-head", head).exit_code == 0
    res = run_cli("db", "check", "--db", archive, "--expect-head", "26:xyz")
    assert res.exit_code == 2 and "not ID:HASH" in res.output
    conn = sqlite3.connect(archive)
    conn.execute("DELETE FROM checks WHERE verdict_id = 26")
    conn.execute("DELETE FROM verdicts WHERE id = 26")
    conn.execute("DELETE FROM chain_heads WHERE verdict_id = 26")
    conn.execute("UPDATE runs SET new_verdicts = new_verdicts - 1")
    conn.commit()
    conn.close()
    res = run_cli("db", "check", "--db", archive, "--expect-head", head)
    assert res.exit_code == 3 and "the expected head is not in the verified chain" in res.output
    res = run_cli("db", "head", "--db", archive)
    assert res.exit_code == 3 and res.stdout == "" and "BROKEN" in res.stderr


def test_reappraise_no_chain_is_enough_consent_when_the_root_came_from_the_store(run_cli, tmp_path):
    # The store's roots are loaded only for --chain: turning the chain off must not read as "roots dropped".
    assert run_cli("certs", "import", "--root", SAMPLES / "test-root.cert").exit_code == 0
    db = tmp_path / "a.db"
    res = run_cli("audit", SAMPLES / "v1-blanked.cert", "--chain", "--hsk-cek", SAMPLES / "hsk_cek.cert", "--db", db)
    assert res.exit_code == 0, res.output
    res = run_cli("db", "reappraise", "--db", db, "--no-chain", "--dry-run", "--json")
    assert res.exit_code != 2, res.output
    assert json.loads(res.stdout)["weaker_than_stored"] == ["the certificate chain is no longer checked (--no-chain)"]
