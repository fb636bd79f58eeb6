"""An ``API`` built the first time it is used: a run that sends nothing never imports the HTTP stack.

Importing requests, urllib3 and oauthlib costs a nightly no-op run about as
much CPU as planning thousands of unchanged files. ``LazyAPI`` stands for the
client a run would make: it knows its base URL (the ledger's name for the
service) and its credit balance (none until something was asked) without
building it; any other attribute builds the client (once, whichever thread
asks first) and is the client's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tagger.client.cloudsight import API

__all__ = ["LazyAPI"]


class LazyAPI:
    """Stands for the ``API`` that ``build`` returns, built when a run first needs the service."""

    def __init__(self, build: Callable[[], API], base_url: str) -> None:
        self._build = build
        self._api: API | None = None
        self._lock = threading.Lock()
        #: As ``API.base_url``: the configured URL without a trailing slash.
        self.base_url = base_url.rstrip("/")

    @property
    def built(self) -> bool:
        """Whether the client was built (something needed the service)."""
        return self._api is not None

    @property
    def api(self) -> API:
        """The client, built on the first call."""
        if self._api is None:
            with self._lock:  # the dispatcher's workers may all reach for it at once: one client, one session
                if self._api is None:
                    self._api = self._build()
        return self._api

    @property
    def credit_balance(self) -> int | None:
        """The balance the service last stated; None while nothing was asked."""
        return self._api.credit_balance if self._api is not None else None

    def __getattr__(self, name: str) -> Any:
        # Only for what this class does not hold itself: the client's methods and attributes.
        if name.startswith("__") or name in {"_build", "_api", "_lock"}:
            raise AttributeError(name)
        return getattr(self.api, name)

    def close(self) -> None:
        """Close the client's connections, if it was built."""
        if self._api is not None:
            self._api.close()

    def __enter__(self) -> LazyAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LazyAPI(base_url={self.base_url!r}, built={self.built})"
