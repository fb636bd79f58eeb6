"""The service's answers, validated before they are believed: one schema per answer, tokens, captions, headers.

Everything here is a pure function of decoded JSON or header text. A value
that breaks the schema raises ``InvalidAnswer`` (``field`` names it); the
client turns that into its ``AnswerError``. What passes is safe to store,
put into a URL and write to XML and CSV:

- a token is 1-128 URL-safe characters (letters, digits, ``-``, ``_``,
  ``~``, ``.``; not starting with a dot, so never ``.`` or ``..``);
- ``status``, ``reason`` and each flag are short words (letters, digits,
  spaces, ``_`` and ``-``): the documented ones and any other such word,
  which the poller treats as "still working" (statuses) or records (reasons);
- ``name`` (the caption) and each category are text, cleaned of what XML and
  CSV cannot carry: lone surrogates become U+FFFD, control characters and
  the noncharacters U+FFFE/U+FFFF (and the rest) are dropped, tabs and line
  breaks become spaces, and the text is cut at ``MAX_CAPTION`` characters;
- a credit balance is a whole number of at most 15 digits, else ignored.

Unknown extra fields are kept as they came and never read.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = [
    "InvalidAnswer",
    "MAX_TOKEN",
    "MAX_CAPTION",
    "check_token",
    "clean_text",
    "printable",
    "submit_answer",
    "job_answer",
    "repost_answer",
    "credit_balance",
]

MAX_TOKEN = 128
#: Longest caption kept (characters); the service's are a few words.
MAX_CAPTION = 1000
_MAX_WORD = 64
_MAX_CATEGORY = 200
_MAX_ITEMS = 100
_TOKEN = re.compile(rf"[A-Za-z0-9_~-][A-Za-z0-9._~-]{{0,{MAX_TOKEN - 1}}}")
_WORD = re.compile(rf"[A-Za-z0-9][A-Za-z0-9 _-]{{0,{_MAX_WORD - 1}}}")
_BALANCE = re.compile(r"[+-]?[0-9]{1,15}")
_SPACES = re.compile(r"[\t\n\r\v\f\u2028\u2029]")
# Dropped: C0 and C1 controls and DEL (the line breaks and tabs became spaces before), and the noncharacters.
_DROP = re.compile("[\x00-\x1f\x7f-\x9f\ufdd0-\ufdef\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidAnswer(ValueError):
    """An answer broke the schema; ``field`` names what, ``token`` is a valid token the answer still held."""

    def __init__(self, field: str, problem: str, *, token: str | None = None) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field
        self.problem = problem
        self.token = token


def _kind(value: object) -> str:
    """What a JSON value is, in words (for messages: never the value itself, which may be hostile)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def printable(value: object, limit: int = 120) -> str:
    """A short, safe rendition of an untrusted value for a message: one line, no control characters."""
    text = value if isinstance(value, str) else repr(value)
    text = _SURROGATE.sub("\ufffd", text)
    text = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def clean_text(text: str, limit: int = MAX_CAPTION) -> str:
    """Text cleaned of what XML 1.0 and CSV cannot carry, on one line, at most ``limit`` characters."""
    text = _SURROGATE.sub("\ufffd", text)
    text = _DROP.sub("", _SPACES.sub(" ", text))
    # Noncharacters of the other planes (U+1FFFE, U+1FFFF, ...) are as unwelcome in XML as U+FFFE.
    text = "".join(ch for ch in text if (ord(ch) & 0xFFFE) != 0xFFFE)
    text = re.sub(" {2,}", " ", text).strip()
    return text[:limit].rstrip()


def check_token(value: object) -> str:
    """A token fit to be stored and put into a URL path, else ``InvalidAnswer``."""
    if not isinstance(value, str):
        raise InvalidAnswer("token", f"is {_kind(value)}, not text")
    if not value:
        raise InvalidAnswer("token", "is empty")
    if not _TOKEN.fullmatch(value):
        if len(value) > MAX_TOKEN:
            raise InvalidAnswer("token", f"is {len(value)} characters long (at most {MAX_TOKEN})")
        raise InvalidAnswer("token", f"{printable(value, 60)!r} holds characters a token cannot hold")
    return value


def _word(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidAnswer(field, f"is {_kind(value)}, not text")
    if not _WORD.fullmatch(value):
        raise InvalidAnswer(field, f"{printable(value, 60)!r} is not a word the protocol knows")
    return value


def _text_list(body: dict[str, Any], field: str, limit: int) -> list[str] | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidAnswer(field, f"is {_kind(value)}, not a list")
    if len(value) > _MAX_ITEMS:
        raise InvalidAnswer(field, f"holds {len(value)} items (at most {_MAX_ITEMS})")
    items = []
    for item in value:
        if isinstance(item, (int, float)) and not isinstance(item, bool) and math.isfinite(item):
            item = str(item)
        if not isinstance(item, str):
            raise InvalidAnswer(field, f"holds {_kind(item)}, not text")
        cleaned = clean_text(item, limit)
        if cleaned:
            items.append(cleaned)
    return items


def _object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidAnswer("answer", f"is {_kind(body)}, not a JSON object")
    return body


def submit_answer(body: object) -> dict[str, Any]:
    """A submission's answer: a valid ``token`` (required), an optional status word."""
    answer = dict(_object(body))
    token = check_token(answer.get("token"))
    try:
        answer["status"] = _word(answer, "status")
    except InvalidAnswer as exc:
        raise InvalidAnswer(exc.field, exc.problem, token=token) from None
    return answer


def job_answer(body: object) -> dict[str, Any]:
    """A poll's answer: status, reason and flags words, a cleaned caption and categories; all optional."""
    answer = dict(_object(body))
    status = _word(answer, "status")
    reason = _word(answer, "reason")
    name = answer.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidAnswer("name", f"is {_kind(name)}, not text")
    flags = _text_list(answer, "flags", _MAX_WORD)
    if flags is not None and not all(_WORD.fullmatch(flag) for flag in flags):
        raise InvalidAnswer("flags", "holds something that is not a word")
    categories = _text_list(answer, "categories", _MAX_CATEGORY)
    for field, value in (("status", status), ("reason", reason), ("flags", flags), ("categories", categories)):
        if field in answer:
            answer[field] = value
    if name is not None:
        answer["name"] = clean_text(name) or None
    return answer


def repost_answer(body: object) -> dict[str, Any] | None:
    """A repost's answer: nothing (200 with an empty body) or a job, as a poll's."""
    return None if body is None else job_answer(body)


def credit_balance(value: str | None) -> int | None:
    """The credits an ``X-CloudSight-CreditBalance`` header states, or None when it states no count."""
    if value is None:
        return None
    text = value.strip()
    if _BALANCE.fullmatch(text):
        return int(text)
    try:  # "42.0" was accepted before: keep that, but only for a finite, bounded number
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number) or abs(number) >= 1e15 or not number.is_integer():
        return None
    return int(number)
