"""The states of files and jobs, and the job row the pipeline passes around."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["JobState", "FileState", "SETTLED_STATUS", "Job", "file_status"]


class JobState(str, enum.Enum):
    """Where a job stands; stored as text."""

    QUEUED = "queued"
    SUBMITTING = "submitting"
    POLLING = "polling"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    TIMEOUT = "timeout"
    NOT_FOUND = "not_found"
    FAILED = "failed"
    HELD = "held"
    WAITING = "waiting"  # prepared; shares the answer of a similar photo's job still in flight


class FileState(str, enum.Enum):
    """Whether a file is present and readable; stored as text."""

    ACTIVE = "active"
    FAILED = "failed"
    MISSING = "missing"


#: The status word a settled job shows users (the service's words).
SETTLED_STATUS = {
    JobState.COMPLETED: "completed",
    JobState.SKIPPED: "skipped",
    JobState.TIMEOUT: "timeout",
    JobState.NOT_FOUND: "not found",
    JobState.FAILED: "failed",
    JobState.QUEUED: "pending",
    JobState.SUBMITTING: "pending",
    JobState.POLLING: "pending",
    JobState.HELD: "pending",  # no caption yet; `tagger status` counts held files apart
    JobState.WAITING: "pending",
}


@dataclass(frozen=True)
class Job:
    """One job row, as the pipeline needs it."""

    id: int
    content_hash: str
    state: JobState
    source: bytes | None
    token: str | None
    reposts: int
    attempts: int
    submitted_at: float | None
    lost_answer: bool = False  # the latest POST may have been received (and charged) without its answer


def file_status(file_state: str, job_state: str | None) -> str:
    """The status a file shows users, from its own and its job's state."""
    if file_state == FileState.MISSING.value:
        return "missing"
    if file_state == FileState.FAILED.value:
        return "failed"
    if job_state is None:
        return "pending"
    return SETTLED_STATUS[JobState(job_state)]
