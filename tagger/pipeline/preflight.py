"""Check everything a run will need before it sends anything, and report every problem at once.

A run pays as it goes: a CSV profile it only needs at the end, a sidecar
folder it cannot write to or a ledger it cannot open must stop it before
the first upload, not after the last. ``check_run`` looks at each option,
setting, path and file a run would use and returns a sentence per problem;
``--dry-run`` checks the same.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from tagger.config import Config
from tagger.errors import Problems, TaggerError
from tagger.exports.profile_names import PROFILE_NAMES
from tagger.keywords.stored import keyword_rules
from tagger.ledger.disk import probe, write_error
from tagger.pipeline.excludes import check_patterns

__all__ = ["check_run", "check_paths", "raise_problems", "NO_KEY"]

NO_KEY = (
    "no API key: pass --api-key, set CLOUDSIGHT_API_KEY, put api_key in the config file, "
    "or use --emulator to try tagger offline"
)


def raise_problems(problems: Sequence[str]) -> None:
    """Raise ``Problems`` (exit 2) naming every one, when there are any."""
    if problems:
        raise Problems(list(problems))


def check_paths(paths: Sequence[str]) -> list[str]:
    """Each PATH (a folder or a file) exists and can be read."""
    problems = []
    for path in paths:
        if not os.path.exists(path):
            problems.append(f"{path} does not exist")
        elif os.path.isdir(path) and not os.access(path, os.R_OK | os.X_OK):
            problems.append(f"{path}: cannot read this folder (permission denied)")
        elif not os.path.isdir(path) and not os.access(path, os.R_OK):
            problems.append(f"{path}: cannot read this file (permission denied)")
    return problems


def _nearest_folder(path: str) -> str:
    """The nearest folder that exists on the way up from ``path`` (where a missing one would be created)."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _can_create_in(path: str, what: str, setting: str) -> str | None:
    """None when a file or folder can be made at ``path``; else why not."""
    folder = _nearest_folder(os.path.dirname(os.path.abspath(path)))
    if not os.path.isdir(folder):
        return f"{setting} {path}: {folder} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{setting} {path}: cannot create the {what} (the folder {folder} is not writable)"
    return None


def _check_file_output(path: str, what: str, setting: str) -> str | None:
    """A file tagger will write: not a folder, writable (or creatable)."""
    if os.path.isdir(path):
        return f"{setting} {path} is a folder; give a file name"
    if os.path.exists(path):
        if not os.access(path, os.W_OK) or not os.access(os.path.dirname(os.path.abspath(path)), os.W_OK):
            return f"{setting} {path}: cannot write the {what} (permission denied)"
        return None
    return _can_create_in(path, what, setting)


def _check_folder_output(path: str, setting: str) -> str | None:
    """A folder tagger will write into: a folder, writable (or creatable)."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            return f"{setting} {path} is a file, not a folder"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"{setting} {path}: cannot write into this folder (permission denied)"
        return None
    return _can_create_in(os.path.join(path, "x"), "folder", setting)


def check_run(
    config: Config,
    paths: Sequence[str],
    *,
    max_credits: int | None = None,
    dry_run: bool = False,
    need_key: bool = True,
) -> list[str]:
    """Every problem that would stop or spoil this run once it had started paying, as sentences."""
    problems = check_paths(paths)
    if max_credits is not None and max_credits < 0:
        problems.append(f"--max-credits must be 0 or more, not {max_credits}")
    if need_key and not dry_run and not config.api_key:
        problems.append(NO_KEY)
    if config.csv_profile not in PROFILE_NAMES:
        problems.append(f"unknown CSV profile {config.csv_profile!r}; choose one of {', '.join(PROFILE_NAMES)}")
    if config.csv == "-":
        problems.append(
            "--csv -: a run prints its summary on standard output; give a file, "
            "or write the CSV with `tagger export --csv -`"
        )
    elif config.csv:
        problems.append(_check_file_output(config.csv, "CSV", "--csv") or "")
    if config.sidecars and config.sidecar_dir:
        problems.append(_check_folder_output(config.sidecar_dir, "--sidecar-dir") or "")
    elif config.sidecars:
        # Sidecars go beside the photos: a read-only archive would be paid for and left without one.
        for path in paths:
            folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
            if os.path.isdir(folder) and not os.access(folder, os.W_OK | os.X_OK):
                problems.append(
                    f"{path}: cannot write sidecars beside the photos (the folder is not writable); "
                    "pass --sidecar-dir FOLDER or --no-sidecars"
                )
    if config.vocabulary:
        try:
            keyword_rules(config.vocabulary, config.unmapped, config.locale, config.keyword_parent)
        except TaggerError as exc:
            problems.append(str(exc))
    ledger = config.ledger_path
    if os.path.exists(ledger) or not dry_run:  # a dry run without a ledger counts in memory
        # In the ledger's own words (a full disk is left to the run: it stops with exit 3 and keeps what it can).
        trouble = probe(ledger)
        if trouble in ("read-only", "permission"):
            problems.append(str(write_error(trouble, ledger)))
        else:
            problems.append(_check_file_output(ledger, "ledger", "ledger") or "")
    problems += check_patterns(config.exclude)
    return [p for p in problems if p]
