"""The Hygon key distribution server (KDS): the only place csvverify opens a network connection.

Used by ``csvverify certs fetch`` alone. Downloads ``{base}/hsk_cek?snumber=<chip id>`` over http or https,
with bounded retries and backoff; the caller verifies the bytes before storing anything. Each attempt has
one deadline for all of it (connect, TLS, headers, body): a watchdog shuts the connection down when the
time is up, so a server that drips bytes cannot hold the command past ``timeout`` per attempt.
"""

import http.client
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from functools import partial

from csvverify.certs import HSK_CEK_SIZE
from csvverify.errors import CsvVerifyError, UsageError

DEFAULT_KDS = "https://cert.hygon.cn"
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_CHUNK = 1024
MAX_TIMEOUT = 3600  # seconds per attempt
_AIR_GAP_HINT = ("on an air-gapped site, fetch on a connected machine and bring a bundle "
                 "(csvverify certs export / certs import)")


class KdsError(CsvVerifyError):
    exit_code = 4


class _AttemptFailed(Exception):
    """One attempt failed in a way another attempt may not (the message says how)."""


def check_base_url(base: str) -> str:
    """The KDS base URL without a trailing slash; only http(s) URLs with a host are accepted."""
    try:
        parts = urllib.parse.urlsplit(base)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise UsageError(f"KDS URL {base!r} is not a valid URL: {exc}",
                         hint="e.g. --kds-url https://cert.hygon.cn") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"KDS URL {base!r}: only http:// or https:// URLs with a host name are accepted",
                         hint="e.g. --kds-url https://cert.hygon.cn (or a mirror's base URL)")
    if parts.query or parts.fragment:
        raise UsageError(f"KDS URL {base!r}: give the base URL without a query or fragment",
                         hint="csvverify appends /hsk_cek?snumber=<chip id> itself")
    return base.rstrip("/")


def hsk_cek_url(chip_id: str, base: str = DEFAULT_KDS) -> str:
    return f"{check_base_url(base)}/hsk_cek?snumber={urllib.parse.quote(chip_id, safe='')}"


class _Deadline:
    """One attempt's time limit. Every connection made in the attempt is shut down when it passes."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._watched: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def left(self) -> float:
        left = self.end - time.monotonic()
        if self.expired or left <= 0:
            raise TimeoutError(f"no complete answer within {self.seconds:g} s")
        return left

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down at the deadline (it is a duplicate of the connection's socket, closed by ``end``)."""
        with self._lock:
            self._watched.append(sock)
            expired = self.expired
        if expired:
            _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            watched = list(self._watched)
        for sock in watched:
            _shutdown(sock)

    def end_attempt(self) -> None:
        self._timer.cancel()
        with self._lock:
            watched, self._watched = self._watched, []
        for sock in watched:
            sock.close()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Watched:
    """An http.client connection whose socket the attempt's deadline can shut down (also during TLS)."""

    def __init__(self, *args, deadline: _Deadline, **kwargs):
        super().__init__(*args, **kwargs)
        self._deadline = deadline
        self._create_connection = self._connect_watched

    def _connect_watched(self, address, timeout, source_address=None):
        left = self._deadline.left()
        sock = socket.create_connection(address, min(timeout, left) if isinstance(timeout, (int, float)) else left,
                                        source_address)
        self._deadline.watch(sock.dup())  # shutdown acts on the connection, so a duplicate reaches it after TLS wraps
        return sock


class _WatchedHTTP(_Watched, http.client.HTTPConnection):
    pass


class _WatchedHTTPS(_Watched, http.client.HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def http_open(self, req):
        return self.do_open(partial(_WatchedHTTP, deadline=self.deadline), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def https_open(self, req):
        return self.do_open(partial(_WatchedHTTPS, deadline=self.deadline), req, context=self._context)


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    max_redirections = 3


def _opener(deadline: _Deadline) -> urllib.request.OpenerDirector:
    """http and https only (a redirect to ftp: or file: is an unknown URL type); proxies from the environment."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), _HTTPHandler(deadline), _HTTPSHandler(deadline),
                    urllib.request.HTTPDefaultErrorHandler(), _RedirectHandler(), urllib.request.HTTPErrorProcessor(),
                    urllib.request.UnknownHandler()):
        opener.add_handler(handler)
    return opener


def _read_answer(url: str, timeout: float) -> tuple[bytes, int | None]:
    """(body, declared Content-Length) of one attempt; at most HSK_CEK_SIZE + 1 bytes are read."""
    deadline = _Deadline(timeout)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "csvverify"})
        with _opener(deadline).open(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            data = bytearray()
            while len(data) <= HSK_CEK_SIZE:
                deadline.left()
                chunk = response.read1(min(_CHUNK, HSK_CEK_SIZE + 1 - len(data)))
                if not chunk:
                    break
                data += chunk
        deadline.left()  # a read cut short by the watchdog looks like the end of the body
        return bytes(data), int(declared) if declared and declared.isdigit() else None
    except urllib.error.HTTPError:
        raise
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if deadline.expired or isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError):
            raise _AttemptFailed(f"request to {url} timed out (no complete answer within {timeout:g} s)") from None
        if isinstance(exc, http.client.HTTPException):
            raise _AttemptFailed(f"the answer from {url} is not valid HTTP ({type(exc).__name__}: {exc})") from None
        raise _AttemptFailed(f"request to {url} failed: {getattr(exc, 'reason', exc)}") from None
    finally:
        deadline.end_attempt()


def _describe_body(data: bytes) -> str:
    text = data[:60].decode("ascii", "replace")
    return f" (it begins {text!r})" if data and text.isprintable() else ""


def fetch_hsk_cek(chip_id: str, base: str = DEFAULT_KDS, timeout: float = 10.0, retries: int = 3,
                  backoff: float = 1.0, sleep=time.sleep) -> tuple[bytes, str]:
    """(2916 bytes, URL). Raises KdsError naming what went wrong: not found, truncated, timeout, …"""
    if not 0 < timeout <= MAX_TIMEOUT:
        raise UsageError(f"timeout {timeout!r}: give the seconds per attempt, more than 0 and at most {MAX_TIMEOUT}")
    url = hsk_cek_url(chip_id, base)
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            sleep(backoff * 2 ** (attempt - 1))
        try:
            data, declared = _read_answer(url, timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 404:
                raise KdsError(f"the KDS has no certificates for chip {chip_id!r} (HTTP 404 from {url})",
                               hint="check the chip id (csvverify show report.cert prints it)") from None
            last = f"HTTP {exc.code} from {url}"
            if exc.code not in _RETRY_STATUS:
                raise KdsError(last, hint="nothing was stored") from None
            continue
        except _AttemptFailed as exc:
            last = str(exc)
            continue
        if declared is not None and len(data) < min(declared, HSK_CEK_SIZE + 1):
            last = (f"the answer from {url} was truncated: the connection closed after {len(data)} of the "
                    f"{declared} bytes announced")
            continue
        if len(data) != HSK_CEK_SIZE:
            size = f"more than {HSK_CEK_SIZE}" if len(data) > HSK_CEK_SIZE else str(len(data))
            raise KdsError(f"the KDS answered {size} bytes for chip {chip_id!r}{_describe_body(data)}: not an "
                           f"hsk_cek.cert, which is exactly {HSK_CEK_SIZE} bytes",
                           hint="check --kds-url points at the KDS (or a mirror serving its files); nothing was stored")
        return data, url
    attempts = f"{retries + 1} attempts" if retries else "1 attempt"
    raise KdsError(f"{last} (gave up after {attempts})", hint=_AIR_GAP_HINT)
