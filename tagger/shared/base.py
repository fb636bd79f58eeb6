"""What the pipeline asks the shared store, and the store that answers when none is configured.

A *content key* is what the local ledger keys a job by: (content hash, hash
scheme, endpoint, locale). A claim is one row per key that only one machine
can create; it is a lease its owner renews while it lives. ``Claim.kind``:

- ``mine``: this machine sends it (``token`` set: taken over from an owner
  that had the service's token, poll it; ``lost``: the owner's POST may have
  reached the service without its answer being recorded, so the resend is
  a possible duplicate);
- ``settled``: another machine has the final answer (``answer``): link to it;
- ``elsewhere``: another live machine holds it: wait for its answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tagger.errors import TaggerError
from tagger.redact import url_secrets

__all__ = ["SharedStore", "NoShared", "SharedError", "StoreDown", "Claim", "Answer", "Lender", "FileRow", "redact"]


class SharedError(TaggerError):
    """The shared store cannot be used: unreachable (when required), refused credentials, missing database, newer schema."""


class StoreDown(Exception):
    """The shared store stopped answering during a run (the caller sends nothing that needs a claim)."""


@dataclass(frozen=True)
class Answer:
    """A content's final answer, as the ledger settles a job with it."""

    state: str  # the ledger's job state: completed, skipped, timeout, not_found, failed
    status: str | None = None
    caption: str | None = None
    reason: str | None = None
    flags: tuple[str, ...] | None = None
    categories: tuple[str, ...] | None = None

    def as_service(self) -> dict:
        """The answer in the service's words (what ``Ledger.settle`` records)."""
        out: dict = {"status": self.status, "name": self.caption, "reason": self.reason}
        if self.flags is not None:
            out["flags"] = list(self.flags)
        if self.categories is not None:
            out["categories"] = list(self.categories)
        return out


@dataclass(frozen=True)
class Claim:
    """What the store said about one content (see the module docstring)."""

    kind: str  # mine | settled | elsewhere
    token: str | None = None
    lost: bool = False
    answer: Answer | None = None


@dataclass(frozen=True)
class Lender:
    """A similar photo's content known to the store: its answer when settled, else it is in flight."""

    content_hash: str
    answer: Answer | None


@dataclass(frozen=True)
class FileRow:
    """One file as a machine reports it for the organisation's view."""

    path: str
    content_hash: str | None
    status: str
    caption: str | None
    keywords: tuple[str, ...]


class SharedStore(Protocol):
    """The hooks the pipeline calls; every method may raise ``StoreDown`` except ``close``."""

    enabled: bool
    machine: str

    def claim(self, digest: str) -> Claim:
        """Claim a content before it is sent (or learn who has it)."""
        ...

    def look(self, digests: list[str]) -> dict[str, Claim]:
        """What became of contents this machine waits for (a lapsed lease is taken over: ``mine``)."""
        ...

    def sending(self, digest: str) -> bool:
        """This machine's POST of a claimed content is about to leave; False: the claim is not (or no longer) ours."""
        ...

    def token(self, digest: str, token: str) -> None:
        """The service answered the upload with this token."""
        ...

    def tokens(self, items: list[tuple[str, str]]) -> int:
        """Tokens (content hash, token) the store missed, for claims this machine still holds; returns how many."""
        ...

    def identity(self) -> str:
        """Which store this is: what a machine reported to it is remembered per store."""
        ...

    def withdraw_files(self, paths: list[str]) -> None:
        """Files this machine reported that it no longer has (deleted, moved, out of its ledger)."""
        ...

    def settled(self, items: list[tuple[str, Answer]]) -> None:
        """Publish final answers (and end this machine's claims of them)."""
        ...

    def release(self, digest: str) -> None:
        """A claimed content was not sent after all (the run stopped, the store was lost): others may take it."""
        ...

    def similar(self, digest: str, key: int, aspect: float, blob: bytes, probes: list[int]) -> Lender | None:
        """Record a content's fingerprint; the similar photo whose answer it may share, if another machine has one."""
        ...

    def lender_elsewhere(self, digest: str, aspect: float, blob: bytes, probes: list[int]) -> Lender | None:
        """Like ``similar``, recording nothing: what a dry run asks."""
        ...

    def lenders(self, digests: list[str]) -> dict[str, Answer | None | bool]:
        """Of similar contents waited for: their answer once settled, False once they lend nothing, else None."""
        ...

    def known(self, digests: list[str]) -> set[str]:
        """Of these contents, those claimed or answered elsewhere (a dry run counts them free)."""
        ...

    def watermark(self) -> float:
        """Until when (the ledger's clock) this owner's answers are known to be published."""
        ...

    def set_watermark(self, until: float) -> None:
        """Every answer this owner settled before ``until`` is published."""
        ...

    def publish_files(self, rows: list[FileRow]) -> None:
        """Report this machine's files for the organisation's view."""
        ...

    def close(self) -> None:
        """Release the connection and stop renewing leases."""
        ...


class NoShared:
    """No ``[shared] url``: every content is this machine's to send, nothing is published."""

    enabled = False
    machine = ""

    def claim(self, digest: str) -> Claim:
        """Always this machine's."""
        return Claim("mine")

    def look(self, digests: list[str]) -> dict[str, Claim]:
        """Nothing is waited for."""
        return {d: Claim("mine") for d in digests}

    def sending(self, digest: str) -> bool:
        """Always free to send."""
        return True

    def token(self, digest: str, token: str) -> None:
        """Nothing to record."""

    def tokens(self, items: list[tuple[str, str]]) -> int:
        """Nothing to record."""
        return 0

    def identity(self) -> str:
        """No store."""
        return ""

    def withdraw_files(self, paths: list[str]) -> None:
        """Nothing reported."""

    def settled(self, items: list[tuple[str, Answer]]) -> None:
        """Nothing to publish."""

    def release(self, digest: str) -> None:
        """Nothing held."""

    def similar(self, digest: str, key: int, aspect: float, blob: bytes, probes: list[int]) -> Lender | None:
        """No other machine's photos."""
        return None

    def lender_elsewhere(self, digest: str, aspect: float, blob: bytes, probes: list[int]) -> Lender | None:
        """No other machine's photos."""
        return None

    def lenders(self, digests: list[str]) -> dict[str, Answer | None | bool]:
        """No lender elsewhere lends anything."""
        return dict.fromkeys(digests, False)

    def known(self, digests: list[str]) -> set[str]:
        """Nothing is known elsewhere."""
        return set()

    def watermark(self) -> float:
        """Nothing was published."""
        return 0.0

    def set_watermark(self, until: float) -> None:
        """Nothing to record."""

    def publish_files(self, rows: list[FileRow]) -> None:
        """Nothing to publish."""

    def close(self) -> None:
        """Nothing to close."""


def redact(url: str) -> str:
    """``url`` with every password in it (user part, ``?password=``, ``password=``) replaced by ``***``."""
    return scrub(url, url)


def scrub(text: str, url: str) -> str:
    """``text`` (an error message) with the URL's passwords, if any, replaced by ``***``."""
    for secret in url_secrets(url):
        text = text.replace(secret, "***")
    return text
