"""Settings: defaults, overridden by the config file, the environment, then flags.

``config.example.toml`` documents every key; ``SECTIONS`` below is the
single list of them. Paths (``ledger``, ``csv``, ``sidecar_dir``) may start
with ``~``, wherever they come from; a relative path in a config file is
relative to that file's folder (so cron, starting elsewhere, finds the same
ledger), one from a flag or the environment to the working directory.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tagger.errors import Problems, UsageError
from tagger.redact import remember, url_secrets

#: The settings that are secrets: checked for what an HTTP header cannot carry, never shown, redacted from output.
SECRET_KEYS = {"api_key": "API key", "api_secret": "API secret"}

__all__ = [
    "Config",
    "load_config",
    "check_secret",
    "default_ledger_path",
    "expand_path",
    "ENV",
    "PATH_KEYS",
    "SECRET_KEYS",
    "ALIASES",
]

#: Settings that name a file or folder.
PATH_KEYS = frozenset({"ledger", "csv", "sidecar_dir", "vocabulary"})

DEFAULT_ENDPOINT = "https://api.cloudsight.ai/v1"

#: Environment variables and the settings they fill.
ENV = {
    "CLOUDSIGHT_API_KEY": "api_key",
    "CLOUDSIGHT_API_SECRET": "api_secret",
    "CLOUDSIGHT_ENDPOINT": "endpoint",
    "TAGGER_LEDGER": "ledger",
    "TAGGER_SHARED_URL": "shared_url",
}

#: Keys of the config file spelled otherwise than their setting: (section, key) -> setting.
ALIASES = {
    ("shared", "url"): "shared_url",
    ("shared", "machine"): "shared_machine",
    ("shared", "lease"): "shared_lease",
}


def default_ledger_path() -> str:
    """The user's data folder for tagger (platformdirs), ``ledger.sqlite`` in it; one ledger serves every archive.

    On Linux that is ``$XDG_DATA_HOME/tagger`` or ``~/.local/share/tagger``,
    where tagger always kept it. Elsewhere (macOS, Windows), a ledger an
    older tagger left at ``~/.local/share/tagger`` is kept in use.
    """
    import platformdirs  # here: a ledger given in the settings (a cron job's) never needs it

    path = os.path.join(platformdirs.user_data_dir("tagger", appauthor=False), "ledger.sqlite")
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    legacy = os.path.join(base, "tagger", "ledger.sqlite")
    if not os.path.exists(path) and os.path.exists(legacy):
        return legacy
    return path


def expand_path(value: str, base: str | None = None) -> str:
    """``~`` expanded; a relative path joined to ``base`` (a config file's folder) when given."""
    if not value:
        return value
    value = os.path.expanduser(value)
    if base is not None and not os.path.isabs(value):
        value = os.path.join(base, value)
    return value


@dataclass
class Config:
    """Every setting of a run. Field names are the config file's keys."""

    # [service]
    endpoint: str = DEFAULT_ENDPOINT
    api_key: str = dataclasses.field(default="", repr=False)
    api_secret: str = dataclasses.field(default="", repr=False)
    locale: str = "en-US"
    ttl: str = ""
    request_timeout: float = 60.0
    request_deadline: float = 300.0
    # [run]
    ledger: str = ""
    workers: int = 2
    max_in_flight: int = 32
    requests_per_second: float = 0.0
    first_poll_delay: float = 4.0
    poll_interval: float = 1.0
    max_poll_interval: float = 10.0
    timeout_reposts: int = 2
    retry_attempts: int = 6
    retry_budget: float = 120.0
    max_retry_after: float = 120.0
    stop_after_failures: int = 5
    resend_ambiguous: bool = True
    job_deadline: float = 1800.0
    reuse_similar: bool = True
    progress_interval: float = 30.0  # seconds between progress lines without a terminal (cron logs)
    confirm_above: int = 100  # on a terminal, a run that would spend more credits asks first
    # [scan]
    exclude: tuple[str, ...] = ()  # gitignore-style patterns, after the built-in ones (tagger.pipeline.excludes)
    # [prepare]
    max_edge: int = 1024
    quality: int = 85
    max_pixels: int = 100_000_000
    send_location: bool = False
    prepare_time_limit: float = 60.0
    prepare_in_processes: bool = True
    # [output]
    csv: str = ""
    csv_profile: str = "default"
    sidecars: bool = True
    sidecar_dir: str = ""
    sidecar_naming: str = "full"
    keyword_parent: str = "CloudSight"
    hold: bool = False  # captions await a person's review (`tagger review`) before any sidecar gets them
    # [keywords]
    vocabulary: str = ""
    unmapped: str = "keep"
    # [shared] (a PostgreSQL URL holds a password: never shown)
    shared_url: str = dataclasses.field(default="", repr=False)
    shared_required: bool = True
    shared_machine: str = ""
    shared_lease: float = 30.0

    def replace(self, **changes: Any) -> Config:
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)

    @property
    def ledger_path(self) -> str:
        """Where the ledger lives (``~`` expanded, for settings built without ``load_config``)."""
        return expand_path(self.ledger) or default_ledger_path()


SECTIONS = {
    "service": ("endpoint", "api_key", "api_secret", "locale", "ttl", "request_timeout", "request_deadline"),
    "run": (
        "ledger",
        "workers",
        "max_in_flight",
        "requests_per_second",
        "first_poll_delay",
        "poll_interval",
        "max_poll_interval",
        "timeout_reposts",
        "retry_attempts",
        "retry_budget",
        "max_retry_after",
        "stop_after_failures",
        "resend_ambiguous",
        "job_deadline",
        "reuse_similar",
        "confirm_above",
        "progress_interval",
    ),
    "scan": ("exclude",),
    "prepare": ("max_edge", "quality", "max_pixels", "send_location", "prepare_time_limit", "prepare_in_processes"),
    "output": ("csv", "csv_profile", "sidecars", "sidecar_dir", "sidecar_naming", "keyword_parent", "hold"),
    "keywords": ("vocabulary", "unmapped"),
    "shared": ("url", "shared_required", "machine", "lease"),
}

_TYPES: dict[str, type[Any]] = {f.name: type(f.default) for f in dataclasses.fields(Config)}


def check_secret(name: str, value: object, where: str) -> str:
    """A key or secret with surrounding whitespace (a pasted line break) stripped; ``UsageError`` if it cannot be sent.

    The message names the setting and where it came from, never the value.
    """
    label = SECRET_KEYS[name]
    if not isinstance(value, str):
        raise UsageError(f"{where}: the {label} must be text")
    value = value.strip()
    bad = next((ch for ch in value if not " " <= ch <= "~"), None)
    if bad is not None:
        what = (
            "a control character (a line break, a tab...)"
            if ord(bad) < 0x20 or ord(bad) == 0x7F
            else "a non-ASCII character"
        )
        raise UsageError(
            f"{where}: the {label} holds {what}, which an HTTP header cannot carry; "
            f"set it again (its value is not shown)"
        )
    return value


#: A type's name in a message ("must be an integer", not "must be a int").
_KIND_WORDS = {int: "an integer", float: "a number", str: "text"}


def _coerce(name: str, value: Any, where: str) -> Any:
    if name in SECRET_KEYS:
        return check_secret(name, value, where)
    kind = _TYPES[name]
    if name == "ttl":
        value = str(value)
        if value not in ("", "max"):
            try:
                float(value)
            except ValueError:
                raise UsageError(f'{where}: ttl must be a number of seconds or "max", not {value!r}') from None
        return value
    if kind is tuple:
        if isinstance(value, str):  # one pattern, as --exclude gives it
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise UsageError(f"{where}: {name} must be a list of patterns, not {value!r}")
        return tuple(value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise UsageError(f"{where}: {name} must be true or false, not {value!r}")
    try:
        result = kind(value)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: {name} must be {_KIND_WORDS.get(kind, kind.__name__)}, not {value!r}") from None
    if kind in (int, float) and result < 0:
        raise UsageError(f"{where}: {name} must not be negative")
    return result


def _from_file(path: str, problems: list[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    folder = os.path.dirname(os.path.abspath(os.path.expanduser(path)))
    for section, body in data.items():
        if section not in SECTIONS or not isinstance(body, dict):
            problems.append(f"{path}: unknown section [{section}] (known: {', '.join(SECTIONS)})")
            continue
        for key, value in body.items():
            if key not in SECTIONS[section]:
                problems.append(f"{path}: unknown key {key!r} in [{section}] (known: {', '.join(SECTIONS[section])})")
                continue
            key = ALIASES.get((section, key)) or key
            _take(values, key, value, path, problems)
            if key in PATH_KEYS and key in values:
                values[key] = expand_path(values[key], folder)
    return values


def _take(values: dict[str, Any], name: str, value: Any, where: str, problems: list[str]) -> None:
    """Coerce one value into ``values``; a bad one is noted in ``problems`` (every one is reported, not the first)."""
    try:
        values[name] = _coerce(name, value, where)
    except UsageError as exc:
        problems.append(str(exc))


def load_config(
    config_file: str | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the settings: flag > environment > config file > default; ``Problems`` names every bad one."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    if config_file:
        values.update(_from_file(os.path.expanduser(config_file), problems))
    for var, name in ENV.items():
        if environ.get(var):
            _take(values, name, environ[var], var, problems)
    for name, value in (flags or {}).items():
        if value is not None:
            _take(values, name, value, f"--{name.replace('_', '-')}", problems)
    for name in PATH_KEYS & values.keys():
        values[name] = expand_path(values[name])
    config = Config(**values)
    remember(
        config.api_key, config.api_secret, *url_secrets(config.shared_url)
    )  # every message the CLI prints from now on is redacted
    if config.sidecar_naming not in ("full", "basename"):
        problems.append(f'sidecar_naming must be "full" or "basename", not {config.sidecar_naming!r}')
    if config.unmapped not in ("keep", "drop"):
        problems.append(f'unmapped must be "keep" or "drop", not {config.unmapped!r}')
    _check_bounds(config, problems)
    _check_endpoint(config.endpoint, problems)
    if problems:
        raise Problems(problems)
    return config


def _check_endpoint(endpoint: str, problems: list[str]) -> None:
    """Refuse an endpoint that is not an http(s) URL with a host (it could never be reached: no retrying for it)."""
    try:
        parts = urllib.parse.urlsplit(endpoint)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        problems.append(
            f"endpoint must be a URL that starts with https:// (or http://) and names a host, not {endpoint!r}"
        )


#: Settings that would hang a run, spin on the service or fail every file when zero:
#: name -> (smallest allowed value, what the setting is, in the message).
_AT_LEAST = {
    "workers": (1, "the number of threads preparing and submitting images"),
    "max_in_flight": (1, "the number of jobs at the service at once"),
    "retry_attempts": (1, "the number of tries of one request"),
    "stop_after_failures": (1, "the number of failed requests in a row that stops the run"),
    "max_edge": (1, "the long edge of an upload, in pixels"),
    "quality": (1, "the JPEG quality of an upload, 1-100"),
    "max_pixels": (1, "the most pixels an image may have"),
}
#: Settings whose huge values would exhaust the machine (processes, threads, memory):
#: name -> (largest allowed value, what the setting is, in the message).
_AT_MOST = {
    "workers": (64, "the number of processes and threads preparing and submitting images"),
    "max_in_flight": (1024, "the number of jobs at the service at once"),
    "max_pixels": (1_000_000_000, "the most pixels an image may have (each worker decodes one in memory)"),
    "max_edge": (10_000, "the long edge of an upload, in pixels"),
    "retry_attempts": (100, "the number of tries of one request"),
    "timeout_reposts": (100, "the number of reposts of a timed-out job"),
}
#: Seconds that must be more than zero.
_POSITIVE = {
    "poll_interval": "the seconds between two polls of one job",
    "max_poll_interval": "the longest gap between two polls of one job, in seconds",
    "request_timeout": "the seconds to wait for one answer",
    "request_deadline": "the seconds one request may take in all",
    "max_retry_after": "the longest pause the service may ask for before the run treats it as an outage",
    "prepare_time_limit": "the seconds one file may take to prepare",
    "job_deadline": "the seconds a job may go without a final answer",
    "shared_lease": "the seconds a claim in the shared store lasts unless its machine renews it",
}


def _check_bounds(config: Config, problems: list[str]) -> None:
    """Refuse values that can hang a run (``poll_interval = 0`` polls without pause, ``workers = 0`` never starts)."""
    for name, (least, what) in _AT_LEAST.items():
        if getattr(config, name) < least:
            problems.append(f"{name} is {what}: it must be at least {least}, not {getattr(config, name)!r}")
    for name, (most, what) in _AT_MOST.items():
        if getattr(config, name) > most:
            problems.append(f"{name} is {what}: it must be at most {most:,}, not {getattr(config, name)!r}")
    for name, what in _POSITIVE.items():
        if not getattr(config, name) > 0:
            problems.append(f"{name} is {what}: it must be more than 0, not {getattr(config, name)!r}")
    if config.quality > 100:
        problems.append(f"quality is the JPEG quality of an upload, 1-100: not {config.quality!r}")
    if 0 < config.max_poll_interval < config.poll_interval:  # (0 is reported above)
        problems.append(
            f"max_poll_interval ({config.max_poll_interval:g}) must be at least poll_interval ({config.poll_interval:g})"
        )
    if config.ttl not in ("", "max") and not float(config.ttl) > 0:
        problems.append(f'ttl must be more than 0 seconds (or "max"), not {config.ttl!r}')
