"""The archive library: schema and migrations, what is stored, and the hash chain against plain-sqlite3 tampering."""

import json
import sqlite3
from pathlib import Path

import pytest
from test_archive_support import make_corpus, report_bytes, rows, scalar

from csvverify import migrations
from csvverify.appraise import Appraiser, Settings
from csvverify.archive import (COVERED_REPORT_FIELDS, GENESIS, VERDICT_FIELDS, Archive, ArchiveError, appraisal,
                               content_sha256, display_path, link_hash, linked_content, parse_since,
                               report_fields_sha256)
from csvverify.audit import audit, context, settings_fingerprint
from csvverify.chaincheck import check_archive
from csvverify.collateral import CollateralOptions
from csvverify.errors import UsageError
from csvverify.trust import TrustRoots


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"), 12, chips=3)


def settings_for(corpus, **extra) -> Settings:
    roots = TrustRoots().with_extra(corpus.trust_root.read_bytes(), str(corpus.trust_root))
    return Settings(roots=roots, chain=True, collateral=CollateralOptions(certs_dir=corpus.certs), **extra)


@pytest.fixture
def filled(tmp_path, corpus):
    """An archive with one verdict per corpus report (12), written in batches of 5 (so several chain heads)."""
    import csvverify.audit as batch

    db = tmp_path / "archive.db"
    archive = Archive(db)
    old = batch.BATCH
    batch.BATCH = 5
    try:
        summary = audit(archive, [corpus.reports], settings_for(corpus), jobs=1)
    finally:
        batch.BATCH = old
    assert summary.new["pass"] == 12
    assert check_archive(archive.conn).ok
    archive.close()
    return db


def tamper(db: Path, *statements):
    conn = sqlite3.connect(db)
    for sql in statements:
        conn.execute(sql)
    conn.commit()
    conn.close()


def verdict_of(db: Path, problem_kind: str):
    archive = Archive(db)
    report = check_archive(archive.conn)
    archive.close()
    assert not report.ok
    first = report.problems[0]
    assert first.kind == problem_kind, report.to_dict()
    return first


# -- schema ---------------------------------------------------------------------------------------

def test_fresh_archive_schema(tmp_path):
    archive = Archive(tmp_path / "a.db")
    assert migrations.applied(archive.db) == [fn.__name__ for fn in migrations.MIGRATIONS] == [
        "m001_initial", "m002_report_coverage", "m003_verdicts_chip_outcome", "m004_reports_chip_vm"]
    assert set(archive.db.table_names()) >= {"runs", "settings", "reports", "report_paths", "verdicts", "reasons",
                                             "checks", "chain_heads", migrations.MIGRATIONS_TABLE}
    assert {c.name for c in archive.db["verdicts"].columns} == {
        "id", "run_id", "appraised_at", "path", "report_sha256", "chip_id", "outcome", "exit_class", "failed_checks",
        "tool_version", "settings_sha256", "policy_sha256", "chain", "trust_roots", "collateral", "findings", "hint",
        "reappraises", "report_fields_sha256", "prev_hash", "hash"}
    assert [c.name for c in archive.db["checks"].columns] == ["verdict_id", "position", "check_id", "status",
                                                              "reason_id"]
    assert {c.name for c in archive.db["reports"].columns} >= {"sha256", "bytes", "size", "version", "chip_id",
                                                               "measure", "user_data", "mnonce", "policy"}
    assert archive.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    indexes = {row[0] for row in archive.db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"verdicts_chip", "verdicts_report", "verdicts_outcome", "verdicts_chip_outcome", "checks_failed",
            "reports_mnonce", "reports_chip_vm"} <= indexes and "reports_chip_id" not in indexes
    archive.close()
    again = Archive(tmp_path / "a.db")
    assert migrations.migrate(again.db) == []
    assert scalar(tmp_path / "a.db", f"SELECT COUNT(*) FROM {migrations.MIGRATIONS_TABLE}") == 4


def test_page_size_and_cache_in_pages_of_the_file(tmp_path):
    from csvverify.archive import CACHE_KIB, PAGE_SIZE, READ_CACHE_KIB, connect

    fresh = Archive(tmp_path / "new.db")
    assert fresh.conn.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE == 16384
    # In pages of the file's size: a cache set in KiB before the page size was fixed would be 4x too large.
    assert fresh.conn.execute("PRAGMA cache_size").fetchone()[0] == CACHE_KIB * 1024 // PAGE_SIZE
    fresh.close()
    reader = connect(tmp_path / "new.db", readonly=True)
    assert reader.execute("PRAGMA cache_size").fetchone()[0] == READ_CACHE_KIB * 1024 // PAGE_SIZE
    reader.close()
    older = sqlite3.connect(tmp_path / "old.db")  # an archive made with 4 KB pages keeps them
    older.execute("PRAGMA page_size = 4096")
    older.execute("VACUUM")
    older.close()
    kept = Archive(tmp_path / "old.db")
    assert kept.conn.execute("PRAGMA page_size").fetchone()[0] == 4096
    assert kept.conn.execute("PRAGMA cache_size").fetchone()[0] == CACHE_KIB * 1024 // 4096
    kept.close()


def test_failed_migration_leaves_nothing(tmp_path, monkeypatch):
    def m999_broken(db):
        db["half_done"].create({"id": int}, pk="id")
        raise RuntimeError("disk on fire")

    Archive(tmp_path / "a.db").close()
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS + [m999_broken])
    with pytest.raises(RuntimeError):
        Archive(tmp_path / "a.db")
    assert "half_done" not in {r[0] for r in rows(tmp_path / "a.db", "SELECT name FROM sqlite_master")}
    assert [r[0] for r in rows(tmp_path / "a.db", f"SELECT name FROM {migrations.MIGRATIONS_TABLE}")] == [
        fn.__name__ for fn in migrations.MIGRATIONS if fn is not m999_broken]


def test_newer_archive_refused(tmp_path):
    Archive(tmp_path / "a.db").close()
    tamper(tmp_path / "a.db", f"INSERT INTO {migrations.MIGRATIONS_TABLE} VALUES ('m999_future', 'x')")
    with pytest.raises(ArchiveError, match="newer csvverify .*m999_future") as err:
        Archive(tmp_path / "a.db")
    assert err.value.exit_code == 7


def test_not_an_archive(tmp_path):
    other = tmp_path / "other.db"
    tamper(other, "CREATE TABLE notes (x)")
    with pytest.raises(ArchiveError, match="not a csvverify archive"):
        Archive(other)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is no database at all" * 100)
    with pytest.raises(ArchiveError, match="cannot be used as an archive"):
        Archive(junk)
    with pytest.raises(ArchiveError, match="is a directory"):
        Archive(tmp_path)
    with pytest.raises(ArchiveError, match="no archive here yet"):
        Archive(tmp_path / "missing.db", create=False)
    emptied = tmp_path / "emptied.db"
    Archive(emptied).close()
    tamper(emptied, f"DELETE FROM {migrations.MIGRATIONS_TABLE}")
    with pytest.raises(ArchiveError, match="migration record .* is empty") as err:
        Archive(emptied)
    assert "free space" not in err.value.diagnostics() and err.value.exit_code == 7


# -- what is stored -------------------------------------------------------------------------------

def test_stored_rows_match_the_verdict(filled, corpus):
    v = rows(filled, "SELECT v.id, v.outcome, v.exit_class, v.chip_id, v.report_sha256, v.chain, v.policy_sha256, "
                     "v.trust_roots, v.collateral, r.chip_id, r.size, length(r.bytes), r.version FROM verdicts v "
                     "JOIN reports r ON r.sha256 = v.report_sha256 ORDER BY v.id")
    assert len(v) == 12
    for vid, outcome, cls, chip, sha, chain, policy, roots, collateral, rchip, size, blen, version in v:
        assert (outcome, cls, chain, policy, version) == ("pass", 0, 1, None, 1)
        assert chip == rchip and chip.startswith("AUDITCHIP") and size == blen == 2548
        assert len(json.loads(roots)) == 2  # pinned Hygon root and the forge test root
        assert f"{chip}/hsk_cek.cert (--certs)" in json.loads(collateral)["hsk"]
    checks = rows(filled, "SELECT check_id, status, text FROM checks JOIN reasons ON reasons.id = reason_id "
                          "WHERE verdict_id = 1 ORDER BY position")
    from csvverify.verdict import CHECKS

    assert [c[0] for c in checks] == list(CHECKS)
    assert dict((c[0], c[1]) for c in checks)["report.signature"] == "pass"
    assert scalar(filled, "SELECT COUNT(*) FROM reasons") < scalar(filled, "SELECT COUNT(*) FROM checks") / 2


def test_sealing_key_never_stored(tmp_path, corpus):
    """Not for a keyed report, nor for inputs holding one that do not decode (padded, or hex text with a stray
    character): nowhere in the archive file, raw or as hex."""
    keyed = report_bytes(99, sealing_key=None)  # the forge's real (non-zero) sealing key
    key = keyed[2484:2516]
    assert any(key)
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "leaked.cert").write_bytes(keyed)
    (ev / "padded.cert").write_bytes(keyed + b"\n\n")
    (ev / "hex.txt").write_bytes(keyed.hex().encode() + b"X")
    archive = Archive(tmp_path / "a.db")
    summary = audit(archive, [ev], settings_for(corpus), jobs=1)
    assert summary.new["error"] == 2 and sum(summary.new.values()) == 3
    stored = rows(tmp_path / "a.db", "SELECT size, bytes, sealing_key, withheld FROM reports ORDER BY size")
    assert stored == [(2548, None, "present", "sealing-key"), (2550, None, None, "not-a-report"),
                      (5097, None, None, "not-a-report")]
    whole = (tmp_path / "a.db").read_bytes() + (tmp_path / "a.db-wal").read_bytes()
    for needle in (key, key.hex().encode(), key.hex().upper().encode()):
        assert needle not in whole
    assert check_archive(archive.conn).ok  # bytes missing for a recorded reason are not tampering


def test_content_hash_recomputes_from_rows(tmp_path, corpus):
    appraiser = Appraiser(settings_for(corpus))
    sha, _ = settings_fingerprint(appraiser)
    ctx = context(appraiser, None, sha)
    data = (corpus.reports / "r00000.cert").read_bytes()
    item = appraisal(appraiser.appraise_bytes(data, "x"), ctx, "x", data)
    archive = Archive(tmp_path / "a.db")
    archive.start_run("test", sha, {}, {})
    [vid] = archive.store([item], sha, None)
    prev, digest, covered = rows(tmp_path / "a.db", "SELECT prev_hash, hash, report_fields_sha256 FROM verdicts "
                                                    "WHERE id = ?", (vid,))[0]
    fields = rows(tmp_path / "a.db", f"SELECT {', '.join(COVERED_REPORT_FIELDS)} FROM reports")[0]
    assert covered == report_fields_sha256(fields)
    assert prev == GENESIS and digest == link_hash(GENESIS, f"{item.content}:{covered}")
    assert item.content == content_sha256(item.verdict, item.checks)


def test_fingerprint_tracks_settings(corpus):
    base, _ = settings_fingerprint(Appraiser(settings_for(corpus)))
    same, _ = settings_fingerprint(Appraiser(settings_for(corpus)))
    from csvverify.verify import Expectations

    other, desc = settings_fingerprint(Appraiser(settings_for(corpus, expect=Expectations(measure=(bytes(32),)))))
    assert base == same != other and desc["expect"]["measure"] == ["00" * 32]


def test_parse_since():
    from datetime import datetime, timezone

    now = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
    assert parse_since("7d", now) == "2026-11-21T12:00:00.000Z"
    assert parse_since("2026-11-01") == "2026-11-01T00:00:00.000Z"
    assert parse_since("2026-11-01T08:00+02:00") == "2026-11-01T06:00:00.000Z"
    for bad, why in [("last tuesday", "not a date"), ("", "empty"), ("  ", "empty"), ("99999999999d", "before the year 1"),
                     ("999999d", "before the year 1"), ("0001-01-01T00:00+01:00", "outside the years")]:
        with pytest.raises(UsageError, match=why) as err:
            parse_since(bad, now)
        assert err.value.exit_code == 2


def test_display_path_keeps_undecodable_names():
    assert display_path(b"/ev/r\xff.cert".decode("utf-8", "surrogateescape")) == "/ev/r\\xff.cert"
    assert display_path("/ev/plain.cert") == "/ev/plain.cert"


# -- the hash chain against tampering with plain sqlite3 -------------------------------------------

def test_intact_chain_and_expected_head(filled):
    head = scalar(filled, "SELECT hash FROM verdicts WHERE id = 7")
    archive = Archive(filled)
    report = check_archive(archive.conn, expect_head=head)
    assert report.ok and report.verdicts == 12 and report.head_id == 12 and report.expected_head_found
    assert not check_archive(archive.conn, expect_head="ab" * 32).ok


@pytest.mark.parametrize("statements, kind, verdict_id, message", [
    (["UPDATE verdicts SET outcome = 'fail' WHERE id = 5"], "edit", 5, "verdict 5 was changed"),
    (["UPDATE checks SET status = 'fail' WHERE verdict_id = 9 AND check_id = 'report.mac'"], "edit", 9,
     "its content, its checks or its report row's fields no longer match"),
    (["DELETE FROM checks WHERE verdict_id = 6", "DELETE FROM verdicts WHERE id = 6"], "deletion", 6,
     "verdict 6 deleted"),
    (["DELETE FROM verdicts WHERE id = 2"], "deletion", 2, "verdict 2 deleted"),
    (["DELETE FROM checks WHERE verdict_id = 12", "DELETE FROM verdicts WHERE id = 12"], "deletion", 12,
     "tail was cut"),
], ids=["edited-verdict", "edited-check", "deleted-verdict", "deleted-verdict-not-its-checks", "cut-tail"])
def test_detects_plain_tampering(filled, statements, kind, verdict_id, message):
    tamper(filled, *statements)
    problem = verdict_of(filled, kind)
    assert problem.verdict_id == verdict_id and message in problem.message


def test_detects_edited_reason_text(filled):
    """Reasons are stored once and shared: the first verdict using the edited text is named."""
    reason = scalar(filled, "SELECT reason_id FROM checks WHERE verdict_id = 3 AND check_id = 'report.signature'")
    first = scalar(filled, "SELECT MIN(verdict_id) FROM checks WHERE reason_id = ?", (reason,))
    tamper(filled, f"UPDATE reasons SET text = 'looks fine' WHERE id = {reason}")
    assert verdict_of(filled, "edit").verdict_id == first


def test_detects_rehashed_edit(filled):
    """An editor who also recomputes the edited row's own hash is caught at the next link."""
    tamper(filled, "UPDATE verdicts SET outcome = 'fail' WHERE id = 4")
    conn = sqlite3.connect(filled)
    archive = Archive(filled)
    from csvverify.chaincheck import _Scan

    row = next(r for r in _Scan(archive.conn).rows() if r.id == 4)
    conn.execute("UPDATE verdicts SET hash = ? WHERE id = 4", (link_hash(row.prev, row.content),))
    conn.commit()
    problem = verdict_of(filled, "edit")
    assert problem.verdict_id == 4 and "recomputed hash" in problem.message


def forge_row(conn, source: int, new_id: int, prev_hash: str, with_checks: bool = True, **changes) -> None:
    """Insert a copy of verdict ``source`` as ``new_id``, changed, linked to ``prev_hash`` with a correct hash
    (covering the report row's fields as csvverify does): what a careful forger who knows the chain rule
    would write."""
    *values, covered = conn.execute(f"SELECT {', '.join(VERDICT_FIELDS)}, report_fields_sha256 FROM verdicts "
                                    "WHERE id = ?", (source,)).fetchone()
    for name, value in changes.items():
        values[VERDICT_FIELDS.index(name)] = value
    checks = conn.execute("SELECT position, check_id, status, text FROM checks JOIN reasons ON reasons.id = reason_id "
                          "WHERE verdict_id = ? ORDER BY position", (source,)).fetchall() if with_checks else []
    digest = link_hash(prev_hash, linked_content(content_sha256(values, checks), covered))
    conn.execute(f"INSERT INTO verdicts (id, {', '.join(VERDICT_FIELDS)}, report_fields_sha256, prev_hash, hash) "
                 f"VALUES ({', '.join('?' * (len(VERDICT_FIELDS) + 4))})", [new_id] + values + [covered, prev_hash, digest])
    if with_checks:
        conn.execute("INSERT INTO checks SELECT ?, position, check_id, status, reason_id FROM checks "
                     "WHERE verdict_id = ?", (new_id, source))
    conn.commit()


def hash_of(conn, verdict_id: int) -> str:
    return conn.execute("SELECT hash FROM verdicts WHERE id = ?", (verdict_id,)).fetchone()[0]


def test_detects_inserted_copy(filled):
    """A copy of an existing verdict (with its checks and its own links) appended under a new id."""
    cols = ", ".join(VERDICT_FIELDS + ("report_fields_sha256", "prev_hash", "hash"))
    tamper(filled, f"INSERT INTO verdicts (id, {cols}) SELECT 13, {cols} FROM verdicts WHERE id = 3",
           "INSERT INTO checks SELECT 13, position, check_id, status, reason_id FROM checks WHERE verdict_id = 3")
    problem = verdict_of(filled, "insertion")
    assert problem.verdict_id == 13


def test_detects_inserted_row_in_the_middle(filled):
    """Ids shifted to make room, a forged row put in the gap with a hash that links properly."""
    conn = sqlite3.connect(filled)
    for vid in range(12, 6, -1):
        conn.execute("UPDATE checks SET verdict_id = ? WHERE verdict_id = ?", (vid + 1, vid))
        conn.execute("UPDATE verdicts SET id = ? WHERE id = ?", (vid + 1, vid))
    conn.execute("UPDATE chain_heads SET verdict_id = verdict_id + 1 WHERE verdict_id > 6")
    forge_row(conn, 2, 7, hash_of(conn, 6), outcome="pass", path="/forged/report.cert")
    conn.close()
    problem = verdict_of(filled, "insertion")
    assert problem.verdict_id == 7 and "inserted" in problem.message


def test_detects_appended_row_beyond_the_head(filled):
    conn = sqlite3.connect(filled)
    forge_row(conn, 12, 13, hash_of(conn, 12), with_checks=False)
    conn.close()
    problem = verdict_of(filled, "insertion")
    assert problem.verdict_id == 13 and "beyond the last recorded chain head" in problem.message


def test_detects_altered_report_bytes(filled):
    tamper(filled, "UPDATE reports SET bytes = zeroblob(2548) WHERE rowid = 1")
    problem = verdict_of(filled, "edit")
    assert "stored bytes do not hash" in problem.message


def test_store_is_atomic(tmp_path, corpus, monkeypatch):
    """A batch that fails half-way leaves no verdict, no check and no report of that batch."""
    archive = Archive(tmp_path / "a.db")
    appraiser = Appraiser(settings_for(corpus))
    sha, desc = settings_fingerprint(appraiser)
    run = archive.start_run("test", sha, desc, {})
    ctx = context(appraiser, run, sha)
    items = []
    for name in ("r00000.cert", "r00001.cert"):
        data = (corpus.reports / name).read_bytes()
        items.append(appraisal(appraiser.appraise_bytes(data, name), ctx, name, data))
    broken = items[1]._replace(checks=items[1].checks + ((0, "format", "pass", "duplicate position"),))
    with pytest.raises(ArchiveError, match="write failed"):
        archive.store([items[0], broken], sha, run)
    assert [scalar(tmp_path / "a.db", f"SELECT COUNT(*) FROM {t}") for t in ("verdicts", "checks", "reports")] == [0, 0, 0]
    assert archive.store(items, sha, run) == [1, 2]
    assert check_archive(archive.conn).ok


# -- what db check covers beyond the chain (reports, settings, runs, paths) ---------------------------

@pytest.mark.parametrize("statements, kind, message", [
    (["DELETE FROM reports WHERE rowid = 5"], "deletion", "the report row of verdict"),
    (["UPDATE reports SET bytes = NULL WHERE rowid = 5"], "deletion", "its bytes were deleted"),
    (["UPDATE reports SET chip_id = 'EVILCHIP' WHERE rowid = 5"], "edit", "was changed after verdict"),
    (["UPDATE reports SET mnonce = (SELECT mnonce FROM reports WHERE rowid = 6) WHERE rowid = 5"], "edit",
     "was changed after verdict"),
    (["UPDATE reports SET bytes = NULL, withheld = 'sealing-key', sealing_key = 'present' WHERE rowid = 5"], "edit",
     "was changed after verdict"),
    (["UPDATE reports SET size = 10 WHERE rowid = 5"], "edit", "size 10, but 2548 bytes are stored"),
    ([f"INSERT INTO reports (sha256, mnonce, first_seen) VALUES ('{'ab' * 32}', 'x', 'x')"], "insertion",
     "is named by no verdict"),
    (["UPDATE settings SET description = '{\"chain\": false}'"], "edit", "no longer hashes to the fingerprint"),
    (["DELETE FROM settings"], "deletion", "named by verdicts are missing"),
    (["DELETE FROM report_paths WHERE rowid = 3"], "deletion", "the path row of verdict"),
    ([f"INSERT INTO report_paths VALUES ('{'cd' * 32}', '/evil.cert', 'x', 1)"], "insertion", "which is not stored"),
    (["UPDATE runs SET new_verdicts = 11"], "insertion", "run 1 recorded 11 new verdicts, 12 are stored"),
    (["DELETE FROM runs"], "deletion", "run 1 is missing: 12 verdicts name it"),
    (["UPDATE runs SET settings_sha256 = 'other'"], "edit", "run 1 names settings other"),
], ids=["report-deleted", "bytes-deleted", "chip-edited", "mnonce-edited", "marked-secret", "size-edited",
        "report-inserted", "settings-edited", "settings-deleted", "path-deleted", "path-inserted", "run-count-edited",
        "run-deleted", "run-settings-edited"])
def test_detects_tampering_around_the_chain(filled, statements, kind, message):
    tamper(filled, *statements)
    problem = verdict_of(filled, kind)
    assert message in problem.message


def test_head_only_deleted_is_a_deletion(filled):
    last_head = scalar(filled, "SELECT MAX(verdict_id) FROM chain_heads")
    tamper(filled, f"DELETE FROM chain_heads WHERE verdict_id = {last_head}")
    assert "chain head recorded after the last verdict of run 1 was deleted" in verdict_of(filled, "deletion").message


def test_last_row_of_a_batch_deleted_with_its_head_is_a_deletion(filled):
    """The last batch holds several rows; its last row and its head go: a deletion, not an insertion."""
    heads = [h for (h,) in rows(filled, "SELECT verdict_id FROM chain_heads ORDER BY id")]
    assert heads[-1] - heads[-2] >= 2
    tamper(filled, "DELETE FROM checks WHERE verdict_id = 12", "DELETE FROM verdicts WHERE id = 12",
           "DELETE FROM chain_heads WHERE verdict_id = 12")
    problem = verdict_of(filled, "deletion")
    assert "the tail was cut, with its chain head: run 1 recorded 12 new verdicts, 11 are stored" in problem.message


@pytest.mark.parametrize("statements, message", [
    (["DELETE FROM checks WHERE verdict_id > 10", "DELETE FROM verdicts WHERE id > 10",
      "DELETE FROM chain_heads WHERE verdict_id > 10"], "run 1 recorded 12 new verdicts, 10 are stored"),
    (["DELETE FROM checks", "DELETE FROM verdicts", "DELETE FROM chain_heads"],
     "run 1 recorded 12 new verdicts, none are stored"),
], ids=["cut-at-a-batch-boundary", "everything-deleted"])
def test_truncation_caught_by_run_counts(filled, statements, message):
    tamper(filled, *statements)
    assert message in verdict_of(filled, "deletion").message


def test_forged_row_appended_with_its_head(filled):
    conn = sqlite3.connect(filled)
    forge_row(conn, 1, 13, hash_of(conn, 12), path="/evidence/forged.cert")
    conn.execute("INSERT INTO chain_heads (verdict_id, hash, recorded_at) VALUES (13, ?, 'x')", (hash_of(conn, 13),))
    conn.commit()
    conn.close()
    assert "run 1 recorded 12 new verdicts, 13 are stored" in verdict_of(filled, "insertion").message


def test_expected_head_catches_a_careful_truncation(filled):
    """Rows, heads and the run's count all cut back: only a head recorded elsewhere shows it."""
    recorded = f"12:{scalar(filled, 'SELECT hash FROM verdicts WHERE id = 12')}"
    earlier = scalar(filled, "SELECT hash FROM verdicts WHERE id = 10")
    tamper(filled, "DELETE FROM checks WHERE verdict_id > 10", "DELETE FROM verdicts WHERE id > 10",
           "DELETE FROM chain_heads WHERE verdict_id > 10", "DELETE FROM report_paths WHERE rowid > 10",
           "DELETE FROM reports WHERE sha256 NOT IN (SELECT report_sha256 FROM verdicts)",
           "UPDATE runs SET new_verdicts = 10")
    archive = Archive(filled)
    assert check_archive(archive.conn).ok  # nothing inside the file can tell
    cut = check_archive(archive.conn, expect_head=recorded)
    assert not cut.ok and cut.expected_head_found is False
    assert check_archive(archive.conn, expect_head=earlier).ok
    assert not check_archive(archive.conn, expect_head=f"9:{earlier}").ok  # the hash at another position
    with pytest.raises(UsageError, match="not ID:HASH"):
        check_archive(archive.conn, expect_head="12:nothex")


def test_report_coverage_survives_a_second_decoding(tmp_path, corpus):
    """The report row is the first one stored; a later verdict covers the row as stored, not its own decoding."""
    appraiser = Appraiser(settings_for(corpus))
    sha, desc = settings_fingerprint(appraiser)
    data = (corpus.reports / "r00000.cert").read_bytes()
    archive = Archive(tmp_path / "a.db")
    run = archive.start_run("test", sha, desc, {})
    item = appraisal(appraiser.appraise_bytes(data, "/a.cert"), context(appraiser, run, sha), "/a.cert", data)
    odd = item._replace(report=item.report[:5] + ("OTHERCHIP",) + item.report[6:])
    archive.store([odd], sha, run)
    archive.store([item], sha, run, force=True)
    archive.finish_run(run, 2, 1, 1)
    assert check_archive(archive.conn).ok


def test_legacy_rows_without_coverage_still_check(filled):
    """Verdicts written before migration m002 cover no report row: the chain still verifies them by the old
    rule, and their report rows are counted as uncovered."""
    conn = sqlite3.connect(filled)
    for row in _legacy_rows(filled):
        conn.execute("UPDATE verdicts SET report_fields_sha256 = NULL, prev_hash = ?, hash = ? WHERE id = ?",
                     (row.prev, link_hash(row.prev, row.content), row.id))
    conn.commit()
    conn.close()
    archive = Archive(filled)
    report = check_archive(archive.conn)
    assert not report.ok  # the chain heads still record the covered hashes
    tamper(filled, "DELETE FROM chain_heads",
           "INSERT INTO chain_heads (verdict_id, hash, recorded_at) SELECT id, hash, 'x' FROM verdicts WHERE id = 12")
    report = check_archive(archive.conn)
    assert report.ok and report.uncovered_reports == 12
    tamper(filled, "UPDATE reports SET mnonce = (SELECT mnonce FROM reports WHERE rowid = 6) WHERE rowid = 5")
    assert "differ from what its stored bytes hold" in verdict_of(filled, "edit").message


def _legacy_rows(db):
    """The rows re-linked as an older csvverify would have written them (no report coverage)."""
    from csvverify.chaincheck import _Scan

    archive = Archive(db)
    rows_ = list(_Scan(archive.conn).rows())
    prev, out = GENESIS, []
    for row in rows_:
        content = row.content.split(":")[0]
        out.append(row._replace(prev=prev, content=content))
        prev = link_hash(prev, content)
    archive.close()
    return out


def _open_and_start_run(path, barrier, results):
    try:
        barrier.wait()
        archive = Archive(Path(path))
        archive.start_run("audit", "0" * 64, {}, {})
        archive.close()
        results.put("ok")
    except Exception as exc:  # reported to the test, which names it
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_creating_one_archive_at_once_all_succeed(tmp_path):
    """SQLite refuses a journal-mode change that meets another connection at once ("database is locked",
    without waiting): a fresh archive opened by two processes together must still open in both."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    outcomes = []
    for round_ in range(8):
        barrier, results = ctx.Barrier(3), ctx.Queue()
        procs = [ctx.Process(target=_open_and_start_run, args=(tmp_path / f"r{round_}.db", barrier, results))
                 for _ in range(3)]
        for p in procs:
            p.start()
        outcomes += [results.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=60)
    assert outcomes == ["ok"] * len(outcomes)


def test_an_audit_leaves_its_write_ahead_log_folded_in(tmp_path, corpus):
    """The archive's size on disk must not change later when some idle connection closes."""
    db = tmp_path / "a.db"
    archive = Archive(db)
    audit(archive, [corpus.reports], settings_for(corpus), recursive=True, jobs=1)
    wal = Path(f"{db}-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    assert scalar(db, "SELECT COUNT(*) FROM verdicts") == 12
    archive.close()


def test_checkpoint_never_waits_for_a_busy_archive(tmp_path):
    db = tmp_path / "a.db"
    archive, other = Archive(db), Archive(db)
    archive.start_run("audit", "0" * 64, {}, {})
    other.conn.execute("BEGIN IMMEDIATE")  # another writer holds the archive
    import time

    started = time.monotonic()
    archive.checkpoint()
    assert time.monotonic() - started < 5
    other.conn.execute("ROLLBACK")
    archive.checkpoint()
    assert Path(f"{db}-wal").stat().st_size == 0
    archive.close()
    other.close()


def test_first_batch_is_committed_early_then_batches_are_full_size(tmp_path, corpus, monkeypatch):
    import csvverify.audit as batch

    monkeypatch.setattr(batch, "FIRST_BATCH", 3)
    monkeypatch.setattr(batch, "BATCH", 5)
    db = tmp_path / "a.db"
    archive = Archive(db)
    audit(archive, [corpus.reports], settings_for(corpus), recursive=True, jobs=1)
    archive.close()
    assert [r[0] for r in rows(db, "SELECT verdict_id FROM chain_heads ORDER BY id")] == [3, 8, 12]


def test_m002_drops_bytes_an_older_archive_kept_for_inputs_that_did_not_decode(tmp_path):
    """Such bytes may hold a sealing key (a keyed report padded out of shape): the upgrade clears them."""
    import sqlite_utils

    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    first = migrations.MIGRATIONS[0]
    assert first.__name__ == "m001_initial"
    first(db)
    db.execute(f"CREATE TABLE {migrations.MIGRATIONS_TABLE} (name TEXT PRIMARY KEY, applied_at TEXT)")
    db[migrations.MIGRATIONS_TABLE].insert({"name": "m001_initial", "applied_at": "2026-11-01T00:00:00+00:00"})
    keyed = (Path(__file__).resolve().parents[1] / "samples" / "v1-good.cert").read_bytes() + b"\n\n"  # carries the sample's sealing key, not a report
    db["reports"].insert({"sha256": "ab" * 32, "size": len(keyed), "bytes": keyed, "first_seen": "x"})
    db["reports"].insert({"sha256": "cd" * 32, "size": 2548, "bytes": keyed[:2548], "version": 1, "first_seen": "x"})
    db.conn.commit()
    db.close()
    archive = Archive(path)
    rows_ = dict(archive.conn.execute("SELECT sha256, bytes IS NULL AND withheld = 'not-a-report' FROM reports"))
    indexes = {r[0] for r in archive.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    page_size = archive.conn.execute("PRAGMA page_size").fetchone()[0]
    archive.close()
    assert rows_ == {"ab" * 32: 1, "cd" * 32: 0}
    # the later migrations ran over the old rows too; the file keeps the page size it was made with
    assert "reports_chip_vm" in indexes and "reports_chip_id" not in indexes and page_size == 4096
