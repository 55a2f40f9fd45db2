"""The Hygon key distribution server (KDS): the only place csvverify opens a network connection.

Used by ``csvverify certs fetch`` alone. Downloads ``{base}/hsk_cek?snumber=<chip id>`` with a timeout
and bounded retries with backoff; the caller verifies the bytes before storing anything.
"""

import time
import urllib.error
import urllib.parse
import urllib.request

from csvverify.certs import HSK_CEK_SIZE
from csvverify.errors import CsvVerifyError

DEFAULT_KDS = "https://cert.hygon.cn"
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class KdsError(CsvVerifyError):
    exit_code = 4


def hsk_cek_url(chip_id: str, base: str = DEFAULT_KDS) -> str:
    return f"{base.rstrip('/')}/hsk_cek?snumber={urllib.parse.quote(chip_id, safe='')}"


def fetch_hsk_cek(chip_id: str, base: str = DEFAULT_KDS, timeout: float = 10.0, retries: int = 3,
                  backoff: float = 1.0, sleep=time.sleep) -> tuple[bytes, str]:
    """(2916 bytes, URL). Raises KdsError naming what went wrong: not found, truncated, timeout, …"""
    url = hsk_cek_url(chip_id, base)
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            sleep(backoff * 2 ** (attempt - 1))
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "csvverify"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                data = response.read(HSK_CEK_SIZE + 1)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise KdsError(f"the KDS has no certificates for chip {chip_id!r} (HTTP 404 from {url})",
                               hint="check the chip id (csvverify show report.cert prints it)") from None
            last = f"HTTP {exc.code} from {url}"
            if exc.code not in _RETRY_STATUS:
                raise KdsError(last) from None
            continue
        except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            kind = "timed out" if isinstance(reason, TimeoutError) or "timed out" in str(reason) else "failed"
            last = f"request to {url} {kind}: {reason}"
            continue
        if len(data) != HSK_CEK_SIZE:
            raise KdsError(f"the KDS answered {len(data)}{'+' if len(data) > HSK_CEK_SIZE else ''} bytes for chip "
                           f"{chip_id!r}; an hsk_cek.cert is {HSK_CEK_SIZE} bytes (truncated or not a certificate)",
                           hint="try again later; nothing was stored")
        return data, url
    raise KdsError(f"{last} (gave up after {retries + 1} attempts)",
                   hint="on an air-gapped site, fetch on a connected machine and bring a bundle "
                        "(csvverify certs export / certs import)")
