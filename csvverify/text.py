"""One rule for showing untrusted text (file names, report fields, messages) on a terminal: nothing in it
may move the cursor, start a new line or change colours, and a byte that was not UTF-8 shows as ``\\xNN``."""

_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def printable(text: str | bytes, *, unambiguous: bool = False, quote: bool = False) -> str:
    """``text`` on one line with every non-printable character (controls, DEL, bidi and other format
    characters, line breaks) as ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``. Bytes are decoded as UTF-8; an
    undecodable byte (also in a ``str`` from a non-UTF-8 argv, as a surrogate escape) shows as ``\\xNN``.
    ``unambiguous`` also doubles backslashes (and writes ``\\n``, ``\\r``, ``\\t``), so an escape always
    stands for a character and never for those characters typed literally; ``quote`` wraps the result in
    double quotes and escapes the ones inside."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    if text.isprintable() and not ((unambiguous and "\\" in text) or (quote and '"' in text)):
        return f'"{text}"' if quote else text
    out = []
    for ch in text:
        code = ord(ch)
        if quote and ch == '"':
            out.append('\\"')
        elif unambiguous and ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        else:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return '"' + "".join(out) + '"' if quote else "".join(out)
