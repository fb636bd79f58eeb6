"""One redaction of the configured secrets, for every message a user sees (the CLI's lines, logging).

The API key and secret are remembered when the settings are read
(``tagger.config``), and so are the passwords of the shared store's URL
(``url_secrets``); ``redact`` replaces each of them, and the escaped
forms a ``repr`` or a traceback shows, with ``***``. The HTTP client
keeps its own credentials out of its errors' descriptions (it imports
nothing of tagger), so what it hands the ledger never holds them either.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.parse

__all__ = ["remember", "redact", "url_secrets", "RedactFilter", "MASK"]

MASK = "***"
# Shorter values are not secrets worth a mask, and masking them would garble ordinary words.
_SHORTEST = 4
_lock = threading.Lock()
_secrets: set[str] = set()


#: Connection parameters that hold a secret (libpq's names), in a URL's query or a ``key=value`` string.
_SECRET_KEYS = ("password", "sslpassword")
_KEYWORD_SECRET = re.compile(rf"\b(?:{'|'.join(_SECRET_KEYS)})\s*=\s*('(?:[^'\\]|\\.)*'|[^\s]+)")
#: A URL's user part, read by hand: a URL the standard parser refuses (a broken IPv6 host) still hides its password.
_USERINFO_SECRET = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@]*:([^/?#]*)@")


def url_secrets(url: str) -> list[str]:
    """The secret values in ``url`` (a ``postgresql://`` URL or a ``key=value`` string), as written and decoded."""
    found: list[str] = []
    if match := _USERINFO_SECRET.match(url):
        found += [match.group(1), urllib.parse.unquote(match.group(1))]
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.password:
            found += [parts.password, urllib.parse.unquote(parts.password)]
        for field in parts.query.split("&"):
            key, _, value = field.partition("=")
            if urllib.parse.unquote_plus(key).strip() in _SECRET_KEYS and value:
                found += [value, urllib.parse.unquote(value), urllib.parse.unquote_plus(value)]
    except ValueError:
        pass
    for match in _KEYWORD_SECRET.finditer("" if "://" in url else url):
        value = match.group(1)
        found += [value, value.strip("'").replace("\\'", "'").replace("\\\\", "\\")]
    out = set()
    for secret in found:
        if secret:
            out |= {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret, safe="")}
    return sorted(out, key=len, reverse=True)  # the longest first: a shorter one may be part of it


def remember(*secrets: str) -> None:
    """Add configured secrets (empty or very short values are ignored)."""
    with _lock:
        for secret in secrets:
            if not secret or len(secret) < _SHORTEST:
                continue
            _secrets.add(secret)
            # As a repr, an exception's args or bytes in a traceback would show it.
            _secrets.add(secret.encode("unicode_escape").decode("ascii"))
            _secrets.add(repr(secret)[1:-1])
            _secrets.add(repr(secret.encode("utf-8", "backslashreplace"))[2:-1])


def redact(text: str) -> str:
    """``text`` with every remembered secret replaced by ``***`` (the longest first)."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactFilter(logging.Filter):
    """A logging filter that redacts each record's message (its arguments merged in first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact and keep the record."""
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True
