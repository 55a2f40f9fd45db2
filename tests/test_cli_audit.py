"""`csvverify audit` and `verify --archive`: batches, bad files, idempotence, crashes and concurrent writers."""

import json
import os
import random
import shutil
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from test_archive_support import archive_counts, csvverify, make_corpus, report_bytes, rows, scalar, start

from csvverify.chaincheck import check_archive

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
TRUST = ["--hsk-cek", SAMPLES / "hsk_cek.cert", "--trust-root", SAMPLES / "test-root.cert"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("audit"), 40, chips=4, per_dir=10)


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("audit-big"), 1500, chips=6, per_dir=250)


@pytest.fixture(scope="module")
def huge_corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("audit-huge"), 6000, chips=8, per_dir=500)


def intact(db: Path) -> bool:
    from csvverify.archive import Archive

    archive = Archive(db, create=False)
    try:
        return check_archive(archive.conn).ok
    finally:
        archive.close()


def audit_json(run_cli, *args) -> tuple[int, dict]:
    res = run_cli("audit", *args, "--json")
    return res.exit_code, json.loads(res.stdout)


def test_audit_directory_all_pass(run_cli, corpus, tmp_path):
    db = tmp_path / "a.db"
    code, doc = audit_json(run_cli, corpus.reports, "-r", *corpus.options, "--db", db, "--jobs", "1")
    assert code == 0 and doc["schema"] == "csvverify/audit/v1"
    assert doc["inputs"] == 40 and doc["outcomes"] == {"pass": {"new": 40, "already_archived": 0}}
    assert archive_counts(db) | {"checks": 0} == {"verdicts": 40, "reports": 40, "checks": 0, "duplicate_verdicts": 0,
                                                  "verdicts_without_all_checks": 0, "orphan_checks": 0}
    assert scalar(db, "SELECT COUNT(*) FROM runs WHERE finished_at IS NOT NULL AND new_verdicts = 40") == 1
    assert intact(db)


def test_without_recursive_only_top_level(run_cli, corpus, tmp_path):
    code, doc = audit_json(run_cli, corpus.reports, *corpus.options, "--db", tmp_path / "a.db")
    assert code == 0 and doc["inputs"] == 0
    code, doc = audit_json(run_cli, corpus.reports / "d001", *corpus.options, "--db", tmp_path / "a.db")
    assert doc["inputs"] == 10


def test_glob(run_cli, corpus, tmp_path):
    code, doc = audit_json(run_cli, corpus.reports, "-r", "--glob", "r0001*.cert", *corpus.options, "--db",
                           tmp_path / "a.db", "--jobs", "1")
    assert doc["inputs"] == 10
    code, doc = audit_json(run_cli, corpus.reports, "-r", "--glob", "d002/*", *corpus.options, "--db",
                           tmp_path / "b.db", "--jobs", "1")
    assert doc["inputs"] == 10


def test_idempotent_rerun_and_force(run_cli, corpus, tmp_path):
    db = tmp_path / "a.db"
    args = [corpus.reports, "-r", *corpus.options, "--db", db, "--jobs", "2"]
    audit_json(run_cli, *args)
    code, doc = audit_json(run_cli, *args)
    assert code == 0 and doc["outcomes"]["pass"] == {"new": 0, "already_archived": 40}
    assert scalar(db, "SELECT COUNT(*) FROM verdicts") == 40
    code, doc = audit_json(run_cli, *args, "--force")
    assert doc["outcomes"]["pass"] == {"new": 40, "already_archived": 0}
    assert scalar(db, "SELECT COUNT(*) FROM verdicts") == 80 and intact(db)


def test_changed_settings_verify_again(run_cli, corpus, tmp_path):
    db = tmp_path / "a.db"
    audit_json(run_cli, corpus.reports / "d000", *corpus.options, "--db", db)
    code, doc = audit_json(run_cli, corpus.reports / "d000", *corpus.options, "--db", db, "--expect-measure", "00" * 32)
    assert code == 5 and doc["outcomes"] == {"fail": {"new": 10, "already_archived": 0}}
    assert doc["failing_checks"] == {"expect.measure": 10}
    assert scalar(db, "SELECT COUNT(DISTINCT settings_sha256) FROM verdicts") == 2


def test_bad_files_become_error_rows(run_cli, tmp_path):
    ev = tmp_path / "ev"
    (ev / "sub").mkdir(parents=True)
    good = (SAMPLES / "v1-blanked.cert").read_bytes()
    (ev / "good.cert").write_bytes(good)
    (ev / "sub" / "again.cert").write_bytes(good)
    tampered = bytearray(good)
    tampered[100] ^= 1
    (ev / "tampered.cert").write_bytes(bytes(tampered))
    (ev / "garbage.cert").write_bytes(os.urandom(1000))
    (ev / "empty.cert").write_bytes(b"")
    os.mkfifo(ev / "fifo.cert")
    (ev / "loop.cert").symlink_to("loop.cert")
    (ev / "dangling.cert").symlink_to("nowhere")
    (ev / "dirlink").symlink_to(ev / "sub")
    with open(ev / "huge.cert", "wb") as fh:
        fh.truncate(50 << 20)
    (ev / os.fsdecode(b"name-\xff.cert")).write_bytes(good)
    db = tmp_path / "a.db"
    res = run_cli("audit", ev, "-r", *TRUST, "--db", db, "--jobs", "2")
    assert res.exit_code == 3, res.output  # the tampered report: the worst class wins
    stored = dict(rows(db, "SELECT path, outcome FROM verdicts"))
    assert stored == {
        f"{ev}/good.cert": "pass", f"{ev}/tampered.cert": "fail", f"{ev}/garbage.cert": "error",
        f"{ev}/empty.cert": "error", f"{ev}/fifo.cert": "error", f"{ev}/loop.cert": "error",
        f"{ev}/dangling.cert": "error", f"{ev}/huge.cert": "error"}
    reasons = dict(rows(db, "SELECT v.path, r.text FROM verdicts v JOIN checks c ON c.verdict_id = v.id "
                            "JOIN reasons r ON r.id = c.reason_id WHERE c.check_id = 'format'"))
    assert "FIFO" in reasons[f"{ev}/fifo.cert"] and "symbolic links" in reasons[f"{ev}/loop.cert"]
    assert "too large" in reasons[f"{ev}/huge.cert"] and "empty" in reasons[f"{ev}/empty.cert"]
    assert scalar(db, "SELECT COUNT(*) FROM report_paths WHERE report_sha256 = (SELECT report_sha256 FROM verdicts "
                      "WHERE path LIKE '%good.cert')") == 3  # good.cert, sub/again.cert, the undecodable name
    assert f"{ev}/name-\\xff.cert" in {p for (p,) in rows(db, "SELECT path FROM report_paths")}
    assert "Traceback" not in res.output and "1 × same report under several paths" in res.output
    rerun = run_cli("audit", ev, "-r", *TRUST, "--db", db, "--jobs", "1")
    assert rerun.exit_code == 3 and scalar(db, "SELECT COUNT(*) FROM verdicts") == 8


def test_undecodable_names_in_reasons(run_cli, corpus, tmp_path):
    """A --certs directory whose name is not UTF-8 ends up in check reasons; it is stored as \\xNN."""
    certs = Path(os.fsdecode(bytes(tmp_path) + b"/certs-\xff"))
    shutil.copytree(corpus.certs, certs)
    code, doc = audit_json(run_cli, corpus.reports / "d000", "--chain", "--certs", certs, "--trust-root",
                           corpus.trust_root, "--db", tmp_path / "a.db", "--jobs", "1")
    assert code == 0 and doc["outcomes"] == {"pass": {"new": 10, "already_archived": 0}}
    reason = scalar(tmp_path / "a.db", "SELECT text FROM reasons WHERE text LIKE 'HSK from %' LIMIT 1")
    assert "certs-\\xff" in reason and intact(tmp_path / "a.db")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(run_cli, tmp_path):
    (tmp_path / "ev").mkdir()
    locked = tmp_path / "ev" / "locked.cert"
    locked.write_bytes((SAMPLES / "v1-blanked.cert").read_bytes())
    locked.chmod(0)
    res = run_cli("audit", tmp_path / "ev", *TRUST, "--db", tmp_path / "a.db")
    assert res.exit_code == 1 and "Permission denied" in scalar(
        tmp_path / "a.db", "SELECT text FROM reasons WHERE text LIKE '%cannot be read%'")


def test_internal_error_is_an_error_row(run_cli, corpus, tmp_path, monkeypatch):
    """A defect while verifying one input must neither stop the batch nor pass the input."""
    from csvverify.appraise import Appraiser

    real = Appraiser.appraise_bytes

    def flaky(self, data, name, digest=None):
        if name.endswith("r00003.cert"):
            raise ZeroDivisionError("boom")
        return real(self, data, name, digest)

    monkeypatch.setattr(Appraiser, "appraise_bytes", flaky)
    code, doc = audit_json(run_cli, corpus.reports / "d000", *corpus.options, "--db", tmp_path / "a.db", "--jobs", "1")
    assert code == 1 and doc["outcomes"]["pass"]["new"] == 9 and doc["outcomes"]["error"]["new"] == 1
    assert "internal error while verifying: ZeroDivisionError: boom" in scalar(
        tmp_path / "a.db", "SELECT text FROM reasons WHERE text LIKE '%internal error%'")


def test_replay_flags(run_cli, tmp_path):
    ev = tmp_path / "ev"
    ev.mkdir()
    mnonce = bytes(range(16))
    (ev / "a.cert").write_bytes(report_bytes(1, user_data=b"first", mnonce=mnonce))
    (ev / "b.cert").write_bytes(report_bytes(2, user_data=b"second", mnonce=mnonce))
    (ev / "c.cert").write_bytes(report_bytes(3, user_data=b"first"))
    (ev / "a-copy.cert").write_bytes((ev / "a.cert").read_bytes())
    for i in range(18):
        (ev / f"vm{i}.cert").write_bytes(report_bytes(100 + i, chips=1, vm_id=bytes([i]) * 16))
    corpus_root = make_corpus(tmp_path / "c", 0, chips=4)
    code, doc = audit_json(run_cli, ev, *corpus_root.options, "--db", tmp_path / "a.db")
    assert code == 0
    assert doc["replay"] == {"mnonce": 1, "user_data": 1, "paths": 1, "chip_vms": 1, "vm_threshold": 16}
    text = run_cli("audit", ev, *corpus_root.options, "--db", tmp_path / "a.db").output
    assert "1 × mnonce reused across different reports" in text and "1 × chip under many VM ids (more than 16)" in text
    # A later batch counts only the groups its own reports touch (the archive then holds reports outside it).
    later = tmp_path / "later"
    later.mkdir()
    (later / "d.cert").write_bytes(report_bytes(4, user_data=b"fourth", mnonce=mnonce))
    code, doc = audit_json(run_cli, later, *corpus_root.options, "--db", tmp_path / "a.db")
    assert code == 0 and (doc["replay"]["mnonce"], doc["replay"]["user_data"], doc["replay"]["paths"]) == (1, 0, 0)


def test_progress_bar_only_on_a_terminal(run_cli, corpus, tmp_path):
    res = run_cli("audit", corpus.reports / "d000", *corpus.options, "--db", tmp_path / "a.db")
    assert res.stderr == "" and res.stdout.startswith("audit: 10 inputs")


def test_usage_and_archive_errors(run_cli, corpus, tmp_path):
    res = run_cli("audit", "-", *corpus.options)
    assert res.exit_code == 2 and "standard input" in res.output
    res = run_cli("audit", corpus.reports, "--db", tmp_path)
    assert res.exit_code == 7 and "is a directory" in res.output and "Traceback" not in res.output
    res = run_cli("audit", corpus.reports, "--hsk", corpus.trust_root, "--db", tmp_path / "bad.db")
    # option conflicts are usage errors, found before the archive is created
    assert res.exit_code == 2 and "--hsk and --cek must be given together" in res.output
    assert not (tmp_path / "bad.db").exists()
    res = run_cli("audit", tmp_path / "missing", *corpus.options, "--db", tmp_path / "a.db")
    assert res.exit_code == 1 and "no such file" in scalar(tmp_path / "a.db", "SELECT text FROM reasons "
                                                                              "WHERE text LIKE '%no such file%'")


def test_verify_archive(run_cli, tmp_path):
    db = tmp_path / "a.db"
    res = run_cli("verify", SAMPLES / "v1-blanked.cert", SAMPLES / "v1-tampered.cert", *TRUST, "--json", "--archive",
                  "--db", db)
    assert res.exit_code == 3
    doc = json.loads(res.stdout)  # stdout stays pure JSON; the archive note goes to stderr
    assert [v["outcome"] for v in doc["verdicts"]] == ["pass", "fail"]
    assert "archived 2 verdict(s)" in res.stderr
    assert rows(db, "SELECT outcome, exit_class FROM verdicts ORDER BY id") == [("pass", 0), ("fail", 3)]
    run_cli("verify", SAMPLES / "v1-blanked.cert", *TRUST, "--archive", "--db", db)
    assert scalar(db, "SELECT COUNT(*) FROM verdicts") == 3  # an explicit verify is always recorded
    # the tampered sample carries a sealing key: kept without bytes; the blanked one with them
    assert rows(db, "SELECT sealing_key, bytes IS NULL FROM reports ORDER BY sealing_key") == [("blanked", 0),
                                                                                               ("present", 1)]
    code, doc = audit_json(run_cli, SAMPLES / "v1-blanked.cert", *TRUST, "--db", db)
    assert doc["outcomes"]["pass"] == {"new": 0, "already_archived": 1}  # same settings as the verify run
    assert intact(db)


def test_verify_archive_from_stdin(run_cli, tmp_path):
    db = tmp_path / "a.db"
    res = run_cli("verify", "-", *TRUST, "--archive", "--db", db, input=(SAMPLES / "v1-blanked.cert").read_bytes())
    assert res.exit_code == 0
    assert rows(db, "SELECT path FROM verdicts") == [("<stdin>",)]
    assert rows(db, "SELECT bytes IS NULL, withheld FROM reports") == [(1, "stdin")]
    assert intact(db)  # bytes missing for a recorded reason
    run_cli("verify", SAMPLES / "v1-blanked.cert", *TRUST, "--archive", "--db", db)
    assert rows(db, "SELECT length(bytes) FROM reports") == [(2548,)]  # filled in once the file was seen
    assert intact(db)


# -- crash safety and concurrency (separate processes) ----------------------------------------------

def verdict_count(db: Path) -> int:
    try:
        return scalar(db, "SELECT COUNT(*) FROM verdicts")
    except sqlite3.Error:  # not created yet, or its schema not committed yet
        return 0


def kill_and_resume(corpus, db: Path, rounds: int, seed: int) -> list[int]:
    """Kill `audit` with SIGKILL, then let a last run finish; returns the verdict count after each kill.
    Even rounds kill at a random moment from start-up on; odd rounds wait until the run has committed a
    batch of its own, then kill at a random moment in the middle of the work."""
    rng = random.Random(seed)
    args = ["audit", corpus.reports, "-r", *corpus.options, "--db", db, "--jobs", "2"]
    seen = []
    for round_ in range(rounds):
        before = verdict_count(db)
        proc = start(*args)
        if round_ % 2 == 0:
            time.sleep(rng.uniform(0.05, 1.5))
        else:
            deadline = time.monotonic() + 60
            while verdict_count(db) == before and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.1))  # the rest of the work takes longer, even on a fast machine
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode in (-signal.SIGKILL, 0)
        seen.append(verdict_count(db))
    final = csvverify(*args, "--json")
    assert final.returncode == 0, final.stderr
    doc = json.loads(final.stdout)
    assert doc["inputs"] == corpus.count and list(doc["outcomes"]) == ["pass"]
    counts = archive_counts(db)
    assert counts["verdicts"] == counts["reports"] == corpus.count
    assert counts["duplicate_verdicts"] == counts["verdicts_without_all_checks"] == counts["orphan_checks"] == 0
    assert scalar(db, "SELECT COUNT(*) FROM report_paths") == corpus.count
    check = csvverify("db", "check", "--db", db)
    assert check.returncode == 0 and check.stdout.startswith(f"intact: {corpus.count} verdicts")
    return seen


def test_sigkill_then_resume(big_corpus, tmp_path):
    seen = kill_and_resume(big_corpus, tmp_path / "a.db", rounds=3, seed=1)
    assert 0 < seen[1] < big_corpus.count, seen  # the second kill landed in the middle of the work


@pytest.mark.slow
def test_sigkill_many_rounds(huge_corpus, tmp_path):
    seen = []
    for seed in range(10):
        seen += kill_and_resume(huge_corpus, tmp_path / f"a{seed}.db", rounds=5, seed=100 + seed)
    middle = sum(0 < n < huge_corpus.count for n in seen)
    print(f"{len(seen)} kills, {middle} in the middle of the work; verdicts after each kill: {seen}")
    assert middle >= 25, seen


def test_two_audits_at_once(big_corpus, tmp_path):
    db = tmp_path / "a.db"
    first = start("audit", big_corpus.reports, "-r", *big_corpus.options, "--db", db, "--jobs", "2", "--json")
    second = start("audit", big_corpus.reports / "d002", big_corpus.reports / "d003", big_corpus.reports / "d004",
                   big_corpus.reports / "d005", *big_corpus.options, "--db", db, "--jobs", "1", "--json")
    out1, err1 = first.communicate(timeout=300)
    out2, err2 = second.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, err1 + err2
    assert "locked" not in err1 + err2
    doc1, doc2 = json.loads(out1), json.loads(out2)
    assert doc1["inputs"] == 1500 and doc2["inputs"] == 1000
    assert doc1["outcomes"]["pass"]["new"] + doc2["outcomes"]["pass"]["new"] == 1500  # each report verified once
    (start1, end1), (start2, end2) = rows(db, "SELECT started_at, finished_at FROM runs ORDER BY id")
    assert start1 < end2 and start2 < end1  # the two runs really wrote at the same time
    counts = archive_counts(db)
    assert counts["verdicts"] == 1500 and counts["duplicate_verdicts"] == 0 and counts["orphan_checks"] == 0
    assert intact(db)


# -- fingerprint, paths, special files, terminal output ---------------------------------------------

def test_explicit_as_of_is_part_of_the_fingerprint(run_cli, corpus, tmp_path):
    """A dated deny entry evaluated at another --as-of can give another verdict: not "already archived"."""
    policy = tmp_path / "dated.toml"
    policy.write_text('version = 1\n[[chips.deny]]\nchip = "AUDITCHIP0001"\nsince = 2027-06-01\n')
    db = tmp_path / "a.db"
    args = [corpus.reports / "d000", *corpus.options, "--policy", policy, "--db", db, "--jobs", "1"]
    _, before = audit_json(run_cli, *args, "--as-of", "2027-01-01")
    _, again = audit_json(run_cli, *args, "--as-of", "2027-01-01")
    _, after = audit_json(run_cli, *args, "--as-of", "2027-07-01")
    assert sum(o["already_archived"] for o in again["outcomes"].values()) == 10  # same time: idempotent
    assert sum(o["new"] for o in after["outcomes"].values()) == 10
    assert after["failing_checks"].get("policy.chip", 0) > before["failing_checks"].get("policy.chip", 0)
    assert scalar(db, "SELECT COUNT(DISTINCT settings_sha256) FROM verdicts") == 2
    # dated rules without --as-of are evaluated at each run's own time: never "already archived"
    _, now1 = audit_json(run_cli, *args)
    time.sleep(1.1)
    _, now2 = audit_json(run_cli, *args)
    assert sum(o["already_archived"] for o in now2["outcomes"].values()) == 0


def test_one_file_under_two_spellings_is_one_path(run_cli, corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(corpus.reports)
    db = tmp_path / "a.db"
    for spelling in ("d000/r00000.cert", "./d000/r00000.cert", "d001/../d000/r00000.cert",
                     corpus.reports / "d000" / "r00000.cert"):
        code, doc = audit_json(run_cli, spelling, *corpus.options, "--db", db)
        assert code == 0 and doc["replay"]["paths"] == 0, spelling
    assert rows(db, "SELECT path FROM report_paths") == [(str(corpus.reports / "d000" / "r00000.cert"),)]
    assert rows(db, "SELECT path FROM verdicts") == [(str(corpus.reports / "d000" / "r00000.cert"),)]


def test_file_swapped_for_a_fifo_after_the_stat(tmp_path, monkeypatch):
    """Between the stat and the open, the file became a FIFO with no writer: refused, not a hang."""
    import threading

    from csvverify import inputs
    from csvverify.errors import InputError

    regular = tmp_path / "regular.cert"
    regular.write_bytes(b"x" * 100)
    fifo = tmp_path / "swapped.cert"
    os.mkfifo(fifo)
    real_stat = os.stat
    monkeypatch.setattr(inputs.os, "stat", lambda p, *a, **k: real_stat(regular if str(p) == str(fifo) else p))
    outcome = []

    def read():
        try:
            inputs.read_input(fifo)
        except InputError as exc:
            outcome.append(exc.message)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # the old behaviour: blocked in open(); release it before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(5)
        pytest.fail("read_input blocked on a FIFO")
    assert outcome and "is a FIFO, not a regular file" in outcome[0]


def test_control_characters_in_names_are_escaped(run_cli, tmp_path):
    ev = tmp_path / "ev"
    ev.mkdir()
    name = "a\x1b[31mRED\x1b[0m\u202eOK.cert"
    (ev / name).write_bytes(b"garbage")
    db = tmp_path / "a.db"
    res = run_cli("audit", ev, "--db", db)
    assert res.exit_code == 1 and "\x1b" not in res.output and "\u202e" not in res.output
    assert "a\\x1b[31mRED\\x1b[0m\\u202eOK.cert" in res.output
    listing = run_cli("db", "list", "--db", db).output
    assert "\x1b" not in listing and "\\x1b[31mRED" in listing
    shown = run_cli("db", "show", "1", "--db", db).output
    assert "\x1b" not in shown and "\u202e" not in shown


def test_tasks_ramp_up_to_full_chunks_in_input_order():
    from csvverify.audit_workers import CHUNK, FIRST_CHUNK, _chunks

    tasks = list(range(1000))
    chunks = list(_chunks(iter(tasks), CHUNK, FIRST_CHUNK))
    assert (FIRST_CHUNK, CHUNK) == (32, 256)
    assert [len(c) for c in chunks] == [32, 64, 128, 256, 256, 256, 8]
    assert [t for c in chunks for t in c] == tasks
    assert [len(c) for c in _chunks(range(5), CHUNK)] == [5]
