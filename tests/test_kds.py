"""`certs fetch` against a local KDS on 127.0.0.1, and proof that nothing else touches the network."""

import _socket
import http.server
import socket
import threading
import time

import click
import pytest

from csvverify.cli import cli
from csvverify.store import CertStore

CHIP = "FORGE0CHIP0001"


class _KDS(http.server.BaseHTTPRequestHandler):
    routes: dict = {}
    hits: list = []

    def do_GET(self):  # noqa: N802 - http.server API
        mode = self.path.split("/")[1]
        self.hits.append(self.path)
        try:
            self.routes[mode](self)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (deadline tests)
            pass

    def answer(self, status, body, delay=0.0, length=None):
        time.sleep(delay)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def drip(self, body, headers_too=False):
        if headers_too:
            for byte in b"HTTP/1.0 200 OK\r\nX-Slow: " + b"x" * 200:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.05)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for i in range(0, len(body), 50):
            self.wfile.write(body[i:i + 50])
            self.wfile.flush()
            time.sleep(0.2)

    def log_message(self, *args):
        pass


@pytest.fixture
def kds(forge):
    good = forge.hsk_cek()
    flaky = {"n": 0}

    def flaky_route(h):
        flaky["n"] += 1
        h.answer(*((503, b"busy") if flaky["n"] < 3 else (200, good)))

    _KDS.routes = {
        "ok": lambda h: h.answer(200, good),
        "missing": lambda h: h.answer(404, b"not found"),
        "truncated": lambda h: h.answer(200, good[:1000], length=len(good)),
        "short": lambda h: h.answer(200, bytes(range(256)) * 3 + bytes(232)),
        "html": lambda h: h.answer(200, b"<html>down for maintenance</html>"),
        "garbage": lambda h: h.answer(200, bytes(range(256)) * 11 + bytes(100)),
        "slow": lambda h: h.answer(200, good, delay=3),
        "drip": lambda h: h.drip(good),
        "dripheaders": lambda h: h.drip(good, headers_too=True),
        "badstatus": lambda h: h.wfile.write(b"garbage garbage\r\n\r\n"),
        "flaky": flaky_route,
    }
    _KDS.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _KDS)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def root_file(tmp_path, forge):
    path = tmp_path / "root.cert"
    path.write_bytes(forge.root_cert)
    return path


def _fetch(run_cli, url, *extra):
    return run_cli("certs", "fetch", "--chip-id", CHIP, "--kds-url", url, *extra)


def test_fetch_success_stores_a_verified_cert(run_cli, kds, root_file, tmp_path, forge):
    res = _fetch(run_cli, f"{kds}/ok", "--trust-root", root_file)
    assert res.exit_code == 0, res.output
    (entry,) = CertStore().entries()
    assert entry.chip_id == CHIP and entry.trusted and entry.chip_from == "the KDS request (snumber)"
    assert entry.source == f"url {kds}/ok/hsk_cek?snumber={CHIP}"
    report = tmp_path / "r.cert"
    report.write_bytes(forge.report(1))
    assert run_cli(report, "--chain", "--trust-root", root_file, "-q").exit_code == 0


@pytest.mark.parametrize("mode, message", [
    ("missing", f"no certificates for chip '{CHIP}' (HTTP 404"),
    ("truncated", "was truncated: the connection closed after 1000 of the 2916 bytes announced"),
    ("short", "the KDS answered 1000 bytes for chip 'FORGE0CHIP0001': not an hsk_cek.cert"),
    ("html", "answered 33 bytes for chip 'FORGE0CHIP0001' (it begins '<html>down for maintenance</html>')"),
    ("garbage", "was not stored"),
    ("slow", "timed out"),
    ("badstatus", "is not valid HTTP (BadStatusLine"),
])
def test_fetch_failures_are_distinct_and_store_nothing(run_cli, kds, root_file, mode, message):
    res = _fetch(run_cli, f"{kds}/{mode}", "--trust-root", root_file, "--timeout", "0.5", "--retries", "1")
    assert res.exit_code == 4 and message in res.output, res.output
    assert "Traceback" not in res.output
    assert CertStore().entries() == []


@pytest.mark.parametrize("mode", ["drip", "dripheaders"])
def test_timeout_is_a_deadline_per_attempt(run_cli, kds, root_file, mode):
    """The drip server sends a byte run well within every socket timeout, but would take ~12 s in all."""
    started = time.monotonic()
    res = _fetch(run_cli, f"{kds}/{mode}", "--trust-root", root_file, "--timeout", "1", "--retries", "1")
    elapsed = time.monotonic() - started
    assert res.exit_code == 4 and "timed out (no complete answer within 1 s)" in res.output, res.output
    assert elapsed < 4, elapsed  # two attempts of 1 s, plus the 1 s backoff
    assert CertStore().entries() == []


@pytest.mark.parametrize("url, message", [
    ("notaurl", "only http:// or https:// URLs"),
    ("http://[::1", "is not a valid URL"),
    ("file:///etc/passwd", "only http:// or https:// URLs"),
    ("ftp://cert.hygon.cn", "only http:// or https:// URLs"),
    ("http://cert.hygon.cn:port", "is not a valid URL"),
    ("https://cert.hygon.cn/?x=1", "without a query"),
])
def test_bad_kds_urls_are_usage_errors(run_cli, url, message):
    res = _fetch(run_cli, url)
    assert res.exit_code == 2 and message in res.output, res.output


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "1e9"])
def test_timeout_must_be_positive_and_bounded(run_cli, timeout):
    res = _fetch(run_cli, "http://127.0.0.1:9", "--timeout", timeout)
    assert res.exit_code == 2 and "timeout" in res.output


def test_library_rejects_a_bad_timeout():
    from csvverify.errors import UsageError
    from csvverify.kds import fetch_hsk_cek

    with pytest.raises(UsageError, match="more than 0"):
        fetch_hsk_cek(CHIP, "http://127.0.0.1:9", timeout=-1)


@pytest.mark.parametrize("chip", ["", "A B\x07", "X" * 64])
def test_fetch_validates_the_chip_id(run_cli, chip):
    res = run_cli("certs", "fetch", "--chip-id", chip, "--kds-url", "http://127.0.0.1:9")
    assert res.exit_code == 2 and "--chip-id" in res.output


def test_fetch_retries_with_backoff(kds):
    from csvverify.kds import fetch_hsk_cek

    waits = []
    data, url = fetch_hsk_cek(CHIP, f"{kds}/flaky", retries=3, backoff=0.01, sleep=waits.append)
    assert len(data) == 2916 and waits == [0.01, 0.02]


def test_fetch_refuses_without_trusted_root(run_cli, kds):
    res = _fetch(run_cli, f"{kds}/ok")
    assert res.exit_code == 4 and "does not chain to a trusted root" in res.output
    assert CertStore().entries() == []


# -- no other command opens a network connection --------------------------------------------------------

def _commands(group, prefix=()):
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, prefix + (name,))
        else:
            yield " ".join(prefix + (name,))


ALL_COMMANDS = list(_commands(cli))
OFFLINE_COMMANDS = [c for c in ALL_COMMANDS if c != "certs fetch"]  # fetch is the one networked command

# Minimal valid arguments and the exit code each must give ({name} is a file the fixture provides).
RUNS = {
    "verify": [(("{report}", "--chain", "--trust-root", "{root}"), 0), (("{real}", "--chain"), 0),
               (("{evidence}", "--chain", "--trust-root", "{root}"), 0), (("{report}",), 0)],
    "show": [(("{evidence}",), 0)],
    "audit": [(("{reports}", "--chain", "--trust-root", "{root}", "--jobs", "1"), 0)],
    "certs import": [(("{real_cek}",), 0), (("{bundle}",), 1), (("--root", "{root}"), 0)],
    "certs list": [(("--json",), 0)],
    "certs show": [(("{real_cek}",), 0)],
    "certs export": [(("{out}/export.tar",), 0)],
    "certs remove": [(("--chip-id", CHIP), 0)],
    "db path": [((), 0)],
    "db status": [((), 0)],
    "db list": [((), 0)],
    "db show": [(("1",), 0)],
    "db export": [(("--format", "json", "-o", "{out}/verdicts.json"), 0)],
    "db check": [((), 0)],
    "db head": [((), 0)],
    "db reappraise": [(("--jobs", "1", "--no-chain"), 0)],
    "db duplicates": [((), 0)],
    "db backup": [(("{out}/copy.db",), 0)],
    "digest": [(("--ovmf", "{firmware}", "--no-kernel-hashes"), 0)],
    "policy init": [((), 0)],
    "policy check": [(("{policy}",), 0)],
    "policy show": [(("{policy}",), 0)],
}


def test_every_command_has_a_network_run():
    assert "certs fetch" in ALL_COMMANDS and len(ALL_COMMANDS) > 15
    assert sorted(RUNS) == sorted(OFFLINE_COMMANDS), "add minimal arguments for new commands to RUNS"


@pytest.fixture
def offline_files(tmp_path, forge, real_dir, run_cli):
    """Files for every command, and a store and archive to work on (made before the network is cut)."""
    files = {"root": tmp_path / "root.cert", "report": tmp_path / "r.cert", "evidence": tmp_path / "e.json",
             "real": real_dir / "report.cert", "real_cek": real_dir / "hsk_cek.cert", "reports": tmp_path / "reports",
             "bundle": tmp_path / "b.tar", "firmware": tmp_path / "OVMF.fd", "policy": tmp_path / "p.toml",
             "out": tmp_path / "out"}
    files["root"].write_bytes(forge.root_cert)
    files["report"].write_bytes(forge.report(1))
    files["evidence"].write_bytes(forge.evidence("coco", 1))
    files["reports"].mkdir()
    (files["reports"] / "a.cert").write_bytes(forge.report(1))
    files["firmware"].write_bytes(b"\x90" * 4096)
    files["out"].mkdir()
    from csvverify.policy import TEMPLATE

    files["policy"].write_text(TEMPLATE)
    chip_dir = tmp_path / "tree" / CHIP
    chip_dir.mkdir(parents=True)
    (chip_dir / "hsk_cek.cert").write_bytes(forge.hsk_cek())
    assert run_cli("certs", "import", chip_dir, "--trust-root", files["root"]).exit_code == 0
    assert run_cli("certs", "import", files["real_cek"], "--chip-id", "NZA9T14052605").exit_code == 0
    assert run_cli("certs", "export", files["bundle"]).exit_code == 0
    assert run_cli(files["report"], "--archive").exit_code == 0
    return files


@pytest.fixture
def no_network(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled by the test")

    class RefusingSocket(_socket.socket):
        connect = connect_ex = sendto = refuse

    for name in ("connect", "connect_ex", "sendto"):
        monkeypatch.setattr(socket.socket, name, refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(_socket, "socket", RefusingSocket)
    return attempts


@pytest.mark.parametrize("command", OFFLINE_COMMANDS)
def test_no_other_command_opens_a_connection(run_cli, offline_files, no_network, command):
    for args, code in RUNS[command]:
        argv = command.split() + [a.format(**offline_files) for a in args]
        res = run_cli(*argv)
        assert res.exit_code == code, (argv, res.output)
        assert "network disabled" not in res.output, argv
    assert no_network == []


def test_certs_fetch_is_the_one_that_connects(run_cli, no_network):
    res = run_cli("certs", "fetch", "--chip-id", "X1234567", "--kds-url", "http://127.0.0.1:9", "--retries", "0")
    assert res.exit_code == 4 and "network disabled" in res.output and no_network
