"""`certs fetch` against a local KDS on 127.0.0.1, and proof that nothing else touches the network."""

import http.server
import socket
import threading
import time

import pytest

from csvverify.store import CertStore


class _KDS(http.server.BaseHTTPRequestHandler):
    routes: dict = {}
    hits: list = []

    def do_GET(self):  # noqa: N802 - http.server API
        mode = self.path.split("/")[1]
        self.hits.append(self.path)
        status, body, delay = self.routes[mode](self)
        time.sleep(delay)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def kds(forge):
    good = forge.hsk_cek()
    flaky = {"n": 0}

    def flaky_route(_):
        flaky["n"] += 1
        return (503, b"busy", 0) if flaky["n"] < 3 else (200, good, 0)

    _KDS.routes = {
        "ok": lambda h: (200, good, 0),
        "missing": lambda h: (404, b"not found", 0),
        "truncated": lambda h: (200, good[:1000], 0),
        "garbage": lambda h: (200, bytes(range(256)) * 11 + bytes(100), 0),
        "slow": lambda h: (200, good, 3),
        "flaky": flaky_route,
    }
    _KDS.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _KDS)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def root_file(tmp_path, forge):
    path = tmp_path / "root.cert"
    path.write_bytes(forge.root_cert)
    return path


def test_fetch_success_stores_a_verified_cert(run_cli, kds, root_file, tmp_path, forge):
    res = run_cli("certs", "fetch", "--chip-id", "FORGE0CHIP0001", "--kds-url", f"{kds}/ok", "--trust-root", root_file)
    assert res.exit_code == 0, res.output
    (entry,) = CertStore().entries()
    assert entry.chip_id == "FORGE0CHIP0001" and entry.trusted
    assert entry.source == f"url {kds}/ok/hsk_cek?snumber=FORGE0CHIP0001"
    report = tmp_path / "r.cert"
    report.write_bytes(forge.report(1))
    assert run_cli(report, "--chain", "--trust-root", root_file, "-q").exit_code == 0


@pytest.mark.parametrize("mode, message", [
    ("missing", "no certificates for chip 'FORGE0CHIP0001' (HTTP 404"),
    ("truncated", "answered 1000 bytes"),
    ("garbage", "was not stored"),
    ("slow", "timed out"),
])
def test_fetch_failures_are_distinct_and_store_nothing(run_cli, kds, root_file, mode, message):
    res = run_cli("certs", "fetch", "--chip-id", "FORGE0CHIP0001", "--kds-url", f"{kds}/{mode}", "--trust-root",
                  root_file, "--timeout", "0.5", "--retries", "1")
    assert res.exit_code == 4 and message in res.output, res.output
    assert "Traceback" not in res.output
    assert CertStore().entries() == []


def test_fetch_retries_with_backoff(kds):
    from csvverify.kds import fetch_hsk_cek

    waits = []
    data, url = fetch_hsk_cek("FORGE0CHIP0001", f"{kds}/flaky", retries=3, backoff=0.01, sleep=waits.append)
    assert len(data) == 2916 and waits == [0.01, 0.02]


def test_fetch_refuses_without_trusted_root(run_cli, kds):
    res = run_cli("certs", "fetch", "--chip-id", "FORGE0CHIP0001", "--kds-url", f"{kds}/ok")
    assert res.exit_code == 4 and "does not chain to a trusted root" in res.output
    assert CertStore().entries() == []


def test_no_other_command_opens_a_connection(run_cli, monkeypatch, tmp_path, forge, root_file, real_dir):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    report = tmp_path / "r.cert"
    report.write_bytes(forge.report(1))
    ev = tmp_path / "e.json"
    ev.write_bytes(forge.evidence("coco", 1))
    bundle = tmp_path / "b.tar"
    runs = [
        ("certs", "import", "--root", root_file),
        ("certs", "import", real_dir / "hsk_cek.cert"),
        ("certs", "list", "--json"),
        ("certs", "show", real_dir / "hsk_cek.cert"),
        ("certs", "export", bundle),
        ("certs", "import", bundle),
        (real_dir / "report.cert", "--chain"),
        (report, "--chain"),
        (ev, "--chain"),
        ("show", ev),
    ]
    for args in runs:
        res = run_cli(*args)
        assert "network disabled" not in res.output, args
    assert attempts == []
    res = run_cli("certs", "fetch", "--chip-id", "X1234567", "--kds-url", "http://127.0.0.1:9", "--retries", "0")
    assert res.exit_code == 4 and attempts, "certs fetch is the one command that does connect"
