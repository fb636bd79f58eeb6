"""The normal forms of a job's identity: the endpoint and the locale, however they were spelt.

A job is one content sent to one endpoint in one locale. Two spellings of
the same service (``HTTPS://Api.Example/v1/``, ``https://api.example:443/v1``)
or of the same locale (``de_de``, ``de-DE``) must find the same jobs, or a
respelt config file would pay for the whole archive again.
"""

from __future__ import annotations

import urllib.parse

__all__ = ["normal_endpoint", "normal_locale", "DEFAULT_LOCALE"]

#: The locale the README always documented; jobs of ledgers older than the locale column were sent in it.
DEFAULT_LOCALE = "en-US"

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normal_endpoint(endpoint: str) -> str:
    """Scheme and host lower-case; default port, credentials and trailing slashes dropped; an id (``emulator``) as is."""
    text = endpoint.strip()
    if "://" not in text:
        return text  # an endpoint id such as "emulator", not a URL
    parts = urllib.parse.urlsplit(text)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        netloc += f":{port}"
    # Credentials in the URL (user:secret@host) are not part of the service's identity, and never reach the ledger.
    path = parts.path.rstrip("/")
    return urllib.parse.urlunsplit((scheme, netloc, path, parts.query, ""))


def normal_locale(locale: str) -> str:
    """A BCP 47 tag in its usual case: ``de_de`` -> ``de-DE``, ``zh-hant-tw`` -> ``zh-Hant-TW``."""
    parts = [p for p in locale.strip().replace("_", "-").split("-") if p]
    if not parts:
        return DEFAULT_LOCALE
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 2 and part.isalpha():
            out.append(part.upper())
        elif len(part) == 4 and part.isalpha():
            out.append(part.title())
        else:
            out.append(part.lower())
    return "-".join(out)
