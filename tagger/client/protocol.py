"""The service's vocabulary without its HTTP client: job statuses, skip reasons, the error tree.

``tagger.client.cloudsight`` re-exports every name here (its docstring draws
the ``APIError`` tree): code that only reads answers, sorts failures or says
what went wrong imports this module and does not pay for importing requests,
urllib3 and oauthlib, which a run that sends nothing never needs.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "APIError",
    "TransientError",
    "RateLimited",
    "ServerError",
    "NetworkError",
    "AuthError",
    "ValidationError",
    "AnswerError",
    "Redirected",
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


class APIError(Exception):
    """Root of the client's errors; ``description`` is a readable sentence.

    ``ambiguous`` is True when the request may have reached the service and
    been acted on (a job created and charged) although its answer was lost.
    """

    retryable = False
    ambiguous = False

    def __init__(self, description: str, *, ambiguous: bool = False) -> None:
        super().__init__(description)
        self.description = description
        self.ambiguous = ambiguous


class TransientError(APIError):
    """A failure that may pass: trying again later can help."""

    retryable = True


class RateLimited(TransientError):
    """HTTP 429: the account sent too many requests (the request was refused, so it cost nothing)."""

    def __init__(self, description: str, retry_after: float | None = None) -> None:
        super().__init__(description)
        self.retry_after = retry_after


class ServerError(TransientError):
    """HTTP 5xx from the service.

    A 503 with Retry-After is the service declining the request: not
    ambiguous. Any other 5xx may come after the work was done (ambiguous).
    """

    def __init__(
        self,
        description: str,
        status_code: int = 500,
        *,
        retry_after: float | None = None,
        ambiguous: bool | None = None,
    ) -> None:
        if ambiguous is None:
            ambiguous = not (status_code == 503 and retry_after is not None)
        super().__init__(description, ambiguous=ambiguous)
        self.status_code = status_code
        self.retry_after = retry_after


class NetworkError(TransientError):
    """The service could not be reached, or the connection failed or timed out.

    Not ambiguous when the connection was never made (refused, no route,
    connect timeout, unknown host); ambiguous once the request may have
    been sent (a read timeout, a reset or a hang-up before the answer).
    """

    def __init__(self, description: str, *, ambiguous: bool = True) -> None:
        super().__init__(description, ambiguous=ambiguous)


class AnswerError(TransientError):
    """The service answered something the protocol does not allow; ``reason`` says what, for the ledger.

    ``token`` is a valid token the answer still held (a submission's status was
    broken, its token was not): the job exists and can be polled. A
    submission's answer without a usable token is ambiguous: the job may have
    been created and charged.
    """

    def __init__(
        self,
        description: str,
        *,
        field: str = "answer",
        problem: str = "",
        token: str | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(description, ambiguous=ambiguous)
        self.field = field
        self.token = token
        self.reason = f"the service's answer was invalid: {field} {problem}".rstrip()


class AuthError(APIError):
    """The service refused the API key or secret."""


class Redirected(APIError):
    """The service answered with a redirect, which is never followed; ``location`` is where it pointed."""

    def __init__(self, description: str, location: str) -> None:
        super().__init__(description)
        self.location = location


class ValidationError(APIError):
    """The service rejected the request's content; ``errors`` maps field to messages."""

    def __init__(self, description: str, errors: Mapping[str, list[str]] | None = None) -> None:
        super().__init__(description)
        self.errors = dict(errors or {})
