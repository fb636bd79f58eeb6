"""CloudSight API client, keeping the original ``cloudsight`` package's API.

A script written against ``cloudsight`` ports by changing its import::

    from tagger import cloudsight
    api = cloudsight.API(cloudsight.SimpleAuth("key"))

Errors (every one is an ``APIError``; ``retryable`` says whether trying the
same request again later can help)::

    APIError                      root; .description, .retryable = False
     +-- TransientError           .retryable = True
     |    +-- RateLimited         HTTP 429; .retry_after (seconds or None)
     |    +-- ServerError         HTTP 5xx; .status_code
     |    +-- NetworkError        connection refused/dropped, timeouts
     +-- AuthError                HTTP 401/403: key or secret refused
     +-- ValidationError          HTTP 422 or an "error" answer; .errors
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from typing import IO, Any

import requests
import requests.adapters
from requests_oauthlib import OAuth1

from tagger import __version__

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

DEFAULT_BASE_URL = "https://api.cloudsight.ai/v1"
USER_AGENT = f"tagger/{__version__} (cloudsight-compatible)"

STATUS_NOT_COMPLETED = "not completed"
STATUS_IN_PROGRESS = "in progress"
STATUS_COMPLETED = "completed"
STATUS_NOT_FOUND = "not found"
STATUS_SKIPPED = "skipped"
STATUS_TIMEOUT = "timeout"

REASON_OFFENSIVE = "offensive"
REASON_BLURRY = "blurry"
REASON_CLOSE = "close"
REASON_DARK = "dark"
REASON_BRIGHT = "bright"
REASON_UNSURE = "unsure"

INITIAL_POLL_WAIT = 4.0
POLL_INTERVAL = 1.0
DEFAULT_LOCALE = "en-US"
CREDIT_HEADER = "X-CloudSight-CreditBalance"


class APIError(Exception):
    """Root of the client's errors; ``description`` is a readable sentence."""

    retryable = False

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class TransientError(APIError):
    """A failure that may pass: trying again later can help."""

    retryable = True


class RateLimited(TransientError):
    """HTTP 429: the account sent too many requests."""

    def __init__(self, description: str, retry_after: float | None = None) -> None:
        super().__init__(description)
        self.retry_after = retry_after


class ServerError(TransientError):
    """HTTP 5xx from the service."""

    def __init__(self, description: str, status_code: int = 500) -> None:
        super().__init__(description)
        self.status_code = status_code


class NetworkError(TransientError):
    """The service could not be reached, or the connection failed or timed out."""


class AuthError(APIError):
    """The service refused the API key or secret."""


class ValidationError(APIError):
    """The service rejected the request's content; ``errors`` maps field to messages."""

    def __init__(self, description: str, errors: Mapping[str, list[str]] | None = None) -> None:
        super().__init__(description)
        self.errors = dict(errors or {})


class SimpleAuth(requests.auth.AuthBase):
    """Key-based authentication: ``Authorization: CloudSight <key>``."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"CloudSight {self.key}"
        return request

    def __repr__(self) -> str:  # never show the key
        return "SimpleAuth(key=***)"


class OAuth(OAuth1):
    """OAuth1 HMAC-SHA1 authentication with the API key and secret.

    requests-oauthlib signs form-encoded bodies and leaves multipart bodies
    (the image upload) out of the signature, as the service expects.
    """

    def __init__(self, key: str, secret: str) -> None:
        super().__init__(key, client_secret=secret, signature_method="HMAC-SHA1")

    def __repr__(self) -> str:
        return "OAuth(key=***, secret=***)"


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

    def image_request(self, image: IO[bytes] | bytes, filename: str, params: Mapping[str, Any] | None = None) -> dict:
        """Send an image file for recognition; returns the job (with its token)."""
        files = {"image_request[image]": (filename, image, "image/jpeg" if _is_jpeg_name(filename) else None)}
        return self._request("POST", "/images", data=_with_locale(params), files=files)

    def remote_image_request(self, image_url: str, params: Mapping[str, Any] | None = None) -> dict:
        """Send an image URL for recognition; returns the job (with its token)."""
        data = _with_locale(params)
        data["image_request[remote_image_url]"] = image_url
        return self._request("POST", "/images", data=data)

    def image_response(self, token: str) -> dict:
        """Fetch the job's current status."""
        return self._request("GET", f"/images/{token}")

    def repost(self, token: str) -> dict | None:
        """Re-queue a timed-out (or unsure) job under the same token."""
        return self._request("POST", f"/images/{token}/repost", empty_ok=True)

    def wait(self, token: str, timeout: float = 600) -> dict:
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

    def _request(self, method: str, path: str, *, empty_ok: bool = False, **kwargs: Any) -> dict:
        url = self.base_url + path
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            raise NetworkError(f"{method} {path}: the service did not answer in time") from exc
        except requests.RequestException as exc:
            raise NetworkError(f"{method} {path}: could not reach {self.base_url} ({type(exc).__name__})") from exc
        balance = response.headers.get(CREDIT_HEADER)
        if balance is not None:
            try:
                self.credit_balance = int(float(balance))
            except ValueError:
                pass
        return _unwrap(response, f"{method} {path}", empty_ok=empty_ok)


def _is_jpeg_name(filename: str) -> bool:
    return filename.lower().endswith((".jpg", ".jpeg"))


def _unwrap(response: requests.Response, what: str, *, empty_ok: bool) -> dict:
    status = response.status_code
    body: Any = None
    if response.content:
        try:
            body = response.json()
        except ValueError:
            body = None
    if status == 429:
        raise RateLimited(f"{what}: rate limited by the service (HTTP 429)", parse_retry_after(response.headers.get("Retry-After")))
    if status >= 500:
        raise ServerError(f"{what}: the service failed (HTTP {status})", status)
    if status in (401, 403):
        raise AuthError(f"{what}: the service refused the credentials (HTTP {status}); check the API key and secret")
    if isinstance(body, dict) and "error" in body:
        error = body["error"]
        if isinstance(error, dict):
            errors = {str(k): [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in error.items()}
            text = "; ".join(f"{k} {', '.join(v)}" for k, v in errors.items())
        else:
            errors, text = {}, str(error)
        raise ValidationError(f"{what}: rejected by the service: {text}", errors)
    if status not in (200, 201) and not (status == 404 and isinstance(body, dict) and "status" in body):
        raise APIError(f"{what}: unexpected answer HTTP {status}")
    if body is None:
        if empty_ok:
            return None  # type: ignore[return-value]
        raise ServerError(f"{what}: the service answered HTTP {status} without a JSON body", status)
    if not isinstance(body, dict):
        raise ServerError(f"{what}: the service answered with unexpected JSON", status)
    return body
