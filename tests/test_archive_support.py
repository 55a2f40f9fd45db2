"""Helpers shared by the archive and audit tests (no tests here): forge corpora and archive inspection."""

import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from csvverify.forge import Forge

_FORGE = None


def fast_forge() -> Forge:
    global _FORGE
    if _FORGE is None:
        _FORGE = Forge(signer="fast")
    return _FORGE


def chip_name(i: int) -> str:
    return f"AUDITCHIP{i:04d}"


def report_bytes(i: int, chips: int = 4, **fields) -> bytes:
    """A good, signed V1 report with its sealing-key field blanked (as collectors leave it).

    Raw reports whose first non-blank byte is "{" are avoided (by varying the user data): csvverify.inputs
    reads those as JSON evidence (reported separately), and these corpora must hold reports that verify."""
    fields.setdefault("chip_id", chip_name(i % chips))
    fields.setdefault("sealing_key", bytes(32))
    if "user_data" in fields:
        return fast_forge().report(1, **fields)
    for salt in range(100):
        data = fast_forge().report(1, user_data=b"audit report %d/%d" % (i, salt), **fields)
        if data.lstrip()[:1] != b"{":
            return data
    raise AssertionError("no usable report")


@dataclass
class Corpus:
    root: Path
    reports: Path
    certs: Path
    trust_root: Path
    count: int

    @property
    def options(self) -> list:
        return ["--chain", "--certs", str(self.certs), "--trust-root", str(self.trust_root)]


def make_corpus(root: Path, count: int, chips: int = 4, per_dir: int = 0) -> Corpus:
    forge = fast_forge()
    reports, certs = root / "reports", root / "certs"
    reports.mkdir(parents=True)
    for c in range(chips):
        (certs / chip_name(c)).mkdir(parents=True)
        (certs / chip_name(c) / "hsk_cek.cert").write_bytes(forge.hsk_cek(chip_name(c)))
    for i in range(count):
        folder = reports / f"d{i // per_dir:03d}" if per_dir else reports
        folder.mkdir(exist_ok=True)
        (folder / f"r{i:05d}.cert").write_bytes(report_bytes(i, chips))
    trust_root = root / "test-root.cert"
    trust_root.write_bytes(forge.root_cert)
    return Corpus(root, reports, certs, trust_root, count)


def rows(db: Path, sql: str, args=()) -> list:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def scalar(db: Path, sql: str, args=()):
    return rows(db, sql, args)[0][0]


def archive_counts(db: Path) -> dict:
    return {
        "verdicts": scalar(db, "SELECT COUNT(*) FROM verdicts"),
        "reports": scalar(db, "SELECT COUNT(*) FROM reports"),
        "checks": scalar(db, "SELECT COUNT(*) FROM checks"),
        "duplicate_verdicts": scalar(db, "SELECT COUNT(*) FROM (SELECT report_sha256 FROM verdicts WHERE report_sha256 "
                                         "IS NOT NULL GROUP BY report_sha256, settings_sha256, tool_version "
                                         "HAVING COUNT(*) > 1)"),
        "verdicts_without_all_checks": scalar(db, "SELECT COUNT(*) FROM verdicts v WHERE (SELECT COUNT(*) FROM checks c "
                                                  "WHERE c.verdict_id = v.id) != (SELECT COUNT(*) FROM checks c2 "
                                                  "WHERE c2.verdict_id = (SELECT MIN(id) FROM verdicts))"),
        "orphan_checks": scalar(db, "SELECT COUNT(*) FROM checks WHERE verdict_id NOT IN (SELECT id FROM verdicts)"),
    }


def csvverify(*args, env=None, **kwargs) -> subprocess.CompletedProcess:
    """Run the CLI as a separate process (python -m csvverify), capturing text output."""
    return subprocess.run([sys.executable, "-m", "csvverify", *map(str, args)], capture_output=True, text=True,
                          env=env or dict(os.environ), **kwargs)


def start(*args, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "csvverify", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env or dict(os.environ))
