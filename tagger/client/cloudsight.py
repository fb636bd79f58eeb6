"""CloudSight API client, keeping the original ``cloudsight`` package's API.

A script written against ``cloudsight`` ports by changing its import::

    from tagger import cloudsight
    api = cloudsight.API(cloudsight.SimpleAuth("key"))

Errors (every one is an ``APIError``; ``retryable`` says whether trying the
same request again later can help; ``ambiguous`` whether the service may have
received and acted on the request although no answer came back)::

    APIError                      root; .description, .retryable = False, .ambiguous = False
     +-- TransientError           .retryable = True
     |    +-- RateLimited         HTTP 429; .retry_after (seconds or None); never ambiguous
     |    +-- ServerError         HTTP 5xx; .status_code, .retry_after; ambiguous
     |    |                       unless a 503 with Retry-After (the service declined it)
     |    +-- NetworkError        connection refused/dropped, timeouts; ambiguous
     |    |                       unless the connection was never made (nothing was sent)
     |    +-- AnswerError         the service answered what the protocol does not allow (a field
     |                            of the wrong type or shape, a bad token, no JSON object);
     |                            .field, .reason; .token: a valid token the answer still held.
     |                            Ambiguous for a submission that yielded no usable token
     |                            (the job may exist and be charged); never for polls and reposts
     +-- AuthError                HTTP 401/403: key or secret refused
     +-- ValidationError          HTTP 422 or an "error" answer; .errors
     +-- Redirected               a 3xx: no redirect is followed (the photo, the key and the
                                  token stay with the configured endpoint); .location

Every answer is validated before it is returned (``tagger.client.answers``):
``image_request`` and ``remote_image_request`` return a job with a valid
token, ``image_response`` and ``repost`` a job whose fields have the
documented types, its caption cleaned for XML and CSV. A token handed to
``image_response`` or ``repost`` that no service would issue (``../admin``)
raises ``AnswerError`` before anything is sent.

An ambiguous failure of ``image_request`` or ``remote_image_request`` may
have created (and charged) a job whose token is lost: sending again is the
only way to a caption, and may pay twice.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from typing import IO, Any
from urllib.parse import quote, urljoin

import requests
import requests.adapters
import urllib3.exceptions
from oauthlib.common import urlencode
from requests_oauthlib import OAuth1

from tagger import __version__
from tagger.client import answers
from tagger.client.protocol import (
    DEFAULT_BASE_URL,
    REASON_BLURRY,
    REASON_BRIGHT,
    REASON_CLOSE,
    REASON_DARK,
    REASON_OFFENSIVE,
    REASON_UNSURE,
    STATUS_COMPLETED,
    STATUS_IN_PROGRESS,
    STATUS_NOT_COMPLETED,
    STATUS_NOT_FOUND,
    STATUS_SKIPPED,
    STATUS_TIMEOUT,
    AnswerError,
    APIError,
    AuthError,
    NetworkError,
    RateLimited,
    Redirected,
    ServerError,
    TransientError,
    ValidationError,
)

__all__ = [
    "API",
    "SimpleAuth",
    "OAuth",
    "APIError",
    "TransientError",
    "RateLimited",
    "ServerError",
    "NetworkError",
    "AuthError",
    "ValidationError",
    "AnswerError",
    "Redirected",
    "read_answer",
    "DEFAULT_BASE_URL",
    "STATUS_NOT_COMPLETED",
    "STATUS_IN_PROGRESS",
    "STATUS_COMPLETED",
    "STATUS_NOT_FOUND",
    "STATUS_SKIPPED",
    "STATUS_TIMEOUT",
    "REASON_OFFENSIVE",
    "REASON_BLURRY",
    "REASON_CLOSE",
    "REASON_DARK",
    "REASON_BRIGHT",
    "REASON_UNSURE",
]

USER_AGENT = f"tagger/{__version__} (cloudsight-compatible)"

INITIAL_POLL_WAIT = 4.0
POLL_INTERVAL = 1.0
DEFAULT_LOCALE = "en-US"
CREDIT_HEADER = "X-CloudSight-CreditBalance"


class SimpleAuth(requests.auth.AuthBase):
    """Key-based authentication: ``Authorization: CloudSight <key>``."""

    def __init__(self, key: str) -> None:
        self.key = _header_safe(key, "key")

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"CloudSight {self.key}"
        return request

    def __repr__(self) -> str:  # never show the key
        return "SimpleAuth(key=***)"


class OAuth(OAuth1):
    """OAuth1 HMAC-SHA1 authentication with the API key and secret, signed as the service verifies it.

    The base string holds the oauth_* parameters, the query and the form
    fields, including the non-file fields of a multipart upload
    (``image_request[locale]`` and the rest); only file parts are left out.
    That is what the official clients sign (the original ``cloudsight``
    package's ``auth.py``, cloudsight-ruby). RFC 5849 and requests-oauthlib
    leave every field of a multipart body out, which the service refuses.
    """

    def __init__(self, key: str, secret: str) -> None:
        super().__init__(
            _header_safe(key, "key"), client_secret=_header_safe(secret, "secret"), signature_method="HMAC-SHA1"
        )

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        content_type = request.headers.get("Content-Type") or ""
        if not content_type.startswith("multipart/form-data"):
            return super().__call__(request)
        fields = _multipart_fields(content_type, request.body)
        # oauthlib signs a form-encoded body's fields: hand it the upload's fields in that form, keep only the header.
        _, headers, _ = self.client.sign(
            str(request.url),
            str(request.method),  # type: ignore[arg-type]  # the stubs want a Literal; requests' is a str
            urlencode(fields),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        # requests-oauthlib's client hands back bytes (it was built with decoding="utf-8").
        value = headers.get(b"Authorization", headers.get("Authorization"))
        request.headers["Authorization"] = value.decode("utf-8") if isinstance(value, bytes) else value
        return request

    def __repr__(self) -> str:
        return "OAuth(key=***, secret=***)"


def _header_safe(value: str, what: str) -> str:
    """``value`` when an HTTP header can carry it; a ``ValueError`` that does not show it otherwise."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError(f"the API {what} holds a control character (a line break?) an HTTP header cannot carry")
    return value


def _credentials(auth: object) -> list[str]:
    """The key and secret an auth object sends or signs with (to keep them out of error descriptions)."""
    client = getattr(auth, "client", None)
    found = [getattr(auth, "key", None), getattr(client, "client_key", None), getattr(client, "client_secret", None)]
    return [c for c in found if isinstance(c, str) and len(c) >= 4]


def _multipart_fields(content_type: str, body: bytes | str | None) -> list[tuple[str, str]]:
    """The non-file fields of a multipart/form-data body, as (name, value) in body order."""
    boundary = ""
    for item in content_type.split(";")[1:]:
        key, _, value = item.strip().partition("=")
        if key.strip().lower() == "boundary":
            boundary = value.strip().strip('"')
    if not boundary or not body:
        return []
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    fields: list[tuple[str, str]] = []
    # Every part follows a "\r\n--boundary" line (the first one too, once a CRLF is put in front);
    # a file's bytes never hold that sequence, so splitting on it is exact.
    for chunk in (b"\r\n" + data).split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, payload = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        params: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, text = line.partition(":")
            if name.strip().lower() == "content-disposition":
                for item in text.split(";")[1:]:
                    key, _, raw = item.strip().partition("=")
                    params[key.strip().lower()] = raw.strip().strip('"')
        if "name" in params and "filename" not in params:
            fields.append((params["name"], payload.decode("utf-8", "replace")))
    return fields


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def _with_locale(params: Mapping[str, Any] | None) -> dict[str, Any]:
    data = dict(params or {})
    if "image_request[locale]" not in data and "locale" not in data:
        data["image_request[locale]"] = DEFAULT_LOCALE
    return data


class API:
    """A CloudSight client: one pooled HTTP session, a timeout on every request."""

    def __init__(
        self,
        auth: requests.auth.AuthBase,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float | tuple[float, float] = (10.0, 60.0),
        pool_size: int = 10,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.auth = auth
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.credit_balance: int | None = None
        self._credentials = _credentials(auth)
        self._sleep = sleep
        self._clock = clock
        self.session = requests.Session()
        self.session.auth = auth
        self.session.headers["User-Agent"] = USER_AGENT
        adapter = requests.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=max(1, pool_size), max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def __repr__(self) -> str:
        return f"API(base_url={self.base_url!r})"

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

    def __enter__(self) -> API:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the original package's API -------------------------------------

    def image_request(
        self, image: IO[bytes] | bytes, filename: str, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send an image file for recognition; returns the job (with its token)."""
        files = {"image_request[image]": (filename, image, "image/jpeg" if _is_jpeg_name(filename) else None)}
        answer: dict[str, Any] = self._request("POST", "/images", "submit", data=_with_locale(params), files=files)
        return answer

    def remote_image_request(self, image_url: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Send an image URL for recognition; returns the job (with its token)."""
        data = _with_locale(params)
        data["image_request[remote_image_url]"] = image_url
        answer: dict[str, Any] = self._request("POST", "/images", "submit", data=data)
        return answer

    def image_response(self, token: str) -> dict[str, Any]:
        """Fetch the job's current status."""
        answer: dict[str, Any] = self._request("GET", f"/images/{_in_path(token)}", "poll")
        return answer

    def repost(self, token: str) -> dict[str, Any] | None:
        """Re-queue a timed-out (or unsure) job under the same token."""
        answer: dict[str, Any] | None = self._request("POST", f"/images/{_in_path(token)}/repost", "repost")
        return answer

    def wait(self, token: str, timeout: float = 600) -> dict[str, Any]:
        """Block until the job leaves ``not completed`` or ``timeout`` seconds pass.

        As documented: one wait of 4 s, then a poll every second.
        """
        deadline = self._clock() + timeout
        self._sleep(min(timeout, INITIAL_POLL_WAIT))
        response = self.image_response(token)
        while response.get("status") in (STATUS_NOT_COMPLETED, STATUS_IN_PROGRESS) and self._clock() < deadline:
            self._sleep(POLL_INTERVAL)
            response = self.image_response(token)
        return response

    # -- plumbing ---------------------------------------------------------

    def _request(self, method: str, path: str, kind: str, **kwargs: Any) -> Any:
        """One request; its answer validated as a ``kind`` answer (see ``read_answer``), or an ``APIError``.

        An error's description never holds the key or secret (a service may echo them back).
        """
        try:
            return self._send(method, path, kind, **kwargs)
        except APIError as exc:
            for secret in self._credentials:
                if secret in exc.description:
                    exc.description = exc.description.replace(secret, "***")
                    exc.args = (exc.description,)
            raise

    def _send(self, method: str, path: str, kind: str, **kwargs: Any) -> Any:
        url = self.base_url + path
        try:
            # Never follow a redirect: the photo, the key and the token stay with the configured endpoint.
            response = self.session.request(method, url, timeout=self.timeout, allow_redirects=False, **kwargs)
        except requests.RequestException as exc:
            if _never_sent(exc):
                raise NetworkError(
                    f"{method} {path}: could not reach {self.base_url} ({type(exc).__name__})", ambiguous=False
                ) from exc
            if isinstance(exc, requests.Timeout):
                raise NetworkError(f"{method} {path}: the service did not answer in time") from exc
            raise NetworkError(
                f"{method} {path}: the connection failed before the answer ({type(exc).__name__})"
            ) from exc
        balance = answers.credit_balance(response.headers.get(CREDIT_HEADER))
        if balance is not None:  # a header that states no count (inf, nan, 1e400, text) is ignored
            self.credit_balance = balance
        return read_answer(kind, response, f"{method} {path}")


def _in_path(token: str) -> str:
    """A token fit for a URL path, quoted; ``AnswerError`` (nothing sent) for one no service would issue."""
    try:
        return quote(answers.check_token(token), safe="")
    except answers.InvalidAnswer as exc:
        raise AnswerError(
            f"refused to send a request for {exc}: not a token the service issues",
            field=exc.field,
            problem=exc.problem,
        ) from None


_ANSWERS: dict[str, Callable[[Any], Any]] = {
    "submit": answers.submit_answer,
    "poll": answers.job_answer,
    "repost": answers.repost_answer,
}


def read_answer(kind: str, response: requests.Response, what: str) -> Any:
    """The answer of a ``kind`` request ("submit", "poll" or "repost"), validated; else only an ``APIError``.

    ``what`` ("GET /images/...") starts every error's description.
    """
    body = _unwrap(response, what)
    submission = kind == "submit"
    if body is None and kind != "repost":
        raise AnswerError(
            f"{what}: the service answered HTTP {response.status_code} without a JSON body",
            problem="is not JSON",
            ambiguous=submission,
        )
    try:
        return _ANSWERS[kind](body)
    except answers.InvalidAnswer as exc:
        raise AnswerError(
            f"{what}: the service's answer was invalid: {exc}",
            field=exc.field,
            problem=exc.problem,
            token=exc.token,
            # A submission answered without a usable token may still have created (and charged) its job.
            ambiguous=submission and exc.token is None,
        ) from None


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request surely never reached the service: no connection was made, or it was never built."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(
        exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema)
    ):
        return True
    if isinstance(exc, requests.ConnectionError) and exc.args:
        reason = exc.args[0]
        if isinstance(reason, urllib3.exceptions.MaxRetryError):
            reason = reason.reason
        # Refused, unreachable, unknown host (NameResolutionError is a NewConnectionError), connect timeout.
        return isinstance(reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError))
    return False


def _is_jpeg_name(filename: str) -> bool:
    return filename.lower().endswith((".jpg", ".jpeg"))


def _unwrap(response: requests.Response, what: str) -> Any:
    """The answer's JSON body (None when it has none), or the error its status means."""
    status = response.status_code
    body: Any = None
    if response.content:
        try:
            body = response.json()
        except ValueError:
            body = None
    if status == 429:
        raise RateLimited(
            f"{what}: rate limited by the service (HTTP 429)", parse_retry_after(response.headers.get("Retry-After"))
        )
    if status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise ServerError(f"{what}: the service failed (HTTP {status})", status, retry_after=retry_after)
    if status in (401, 403):
        raise AuthError(f"{what}: the service refused the credentials (HTTP {status}); check the API key and secret")
    if 300 <= status <= 399 and response.headers.get("Location"):
        where = answers.printable(urljoin(response.url or "", response.headers["Location"]), 300)
        raise Redirected(
            f"{what}: the service redirected the request (HTTP {status}) to {where}; tagger follows no redirect "
            "(the photo, the key and the token stay with the configured endpoint): check the endpoint setting",
            where,
        )
    if isinstance(body, dict) and "error" in body:
        error = body["error"]
        # The service's words end up in messages and in the ledger: printable, one line, bounded.
        if isinstance(error, dict):
            errors = {
                answers.printable(k, 60): [answers.printable(m, 200) for m in (v if isinstance(v, list) else [v])][:10]
                for k, v in list(error.items())[:10]
            }
            text = "; ".join(f"{k} {', '.join(v)}" for k, v in errors.items())
        else:
            errors, text = {}, answers.printable(error, 300)
        raise ValidationError(f"{what}: rejected by the service: {text}", errors)
    if status not in (200, 201) and not (status == 404 and isinstance(body, dict) and "status" in body):
        raise APIError(f"{what}: unexpected answer HTTP {status}")
    return body
