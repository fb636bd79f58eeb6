"""Settings precedence: flag > environment > config file > default."""

from __future__ import annotations

import pytest

from tagger.config import ALIASES, Config, load_config
from tagger.errors import UsageError


def test_precedence(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[service]\nendpoint = "http://file/v1"\napi_key = "filekey"\nlocale = "de-DE"\n[run]\nworkers = 3\n'
    )
    env = {"CLOUDSIGHT_ENDPOINT": "http://env/v1", "CLOUDSIGHT_API_KEY": "envkey"}
    c = load_config(str(cfg), {"endpoint": "http://flag/v1", "workers": None}, env)
    assert (c.endpoint, c.api_key, c.locale, c.workers) == ("http://flag/v1", "envkey", "de-DE", 3)
    assert load_config(None, {}, {}).endpoint == Config().endpoint


def test_example_config_documents_every_key():
    import dataclasses
    import tomllib
    from pathlib import Path

    example = tomllib.loads((Path(__file__).parents[2] / "config.example.toml").read_text())
    keys = {ALIASES.get((name, k), k) for name, section in example.items() for k in section}
    assert keys == {f.name for f in dataclasses.fields(Config)}
    assert load_config(str(Path(__file__).parents[2] / "config.example.toml"), {}, {}) == Config()


@pytest.mark.parametrize(
    "text, message",
    [
        ("[run]\nworkers = 'many'\n", "workers must be an integer"),
        ("[nope]\nx = 1\n", "unknown section"),
        ("[run]\nwrkers = 2\n", "unknown key 'wrkers'"),
        ("[service]\nttl = 'soon'\n", "ttl must be"),
        ("[output]\nsidecar_naming = 'odd'\n", "sidecar_naming"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_config_is_a_usage_error(tmp_path, text, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_config(str(cfg), {}, {})


def test_the_key_is_not_in_the_repr():
    assert "sekrit" not in repr(load_config(None, {"api_key": "sekrit", "api_secret": "sekrit2"}, {}))


@pytest.mark.parametrize(
    "text, key",
    [
        ("[run]\npoll_interval = 0\n", "poll_interval"),
        ("[run]\nmax_poll_interval = 0\n", "max_poll_interval"),
        ("[run]\npoll_interval = 2.0\nmax_poll_interval = 1.0\n", "max_poll_interval"),
        ("[run]\nfirst_poll_delay = -1\n", "first_poll_delay"),
        ("[run]\nretry_budget = -5\n", "retry_budget"),
        ("[run]\nmax_in_flight = 0\n", "max_in_flight"),
        ("[run]\nworkers = 0\n", "workers"),
        ("[run]\njob_deadline = 0\n", "job_deadline"),
        ("[run]\nretry_attempts = 0\n", "retry_attempts"),
        ("[run]\nstop_after_failures = 0\n", "stop_after_failures"),
        ("[service]\nrequest_timeout = 0\n", "request_timeout"),
        ("[service]\nttl = 0\n", "ttl"),
        ("[prepare]\nprepare_time_limit = 0\n", "prepare_time_limit"),
        ("[prepare]\nmax_edge = 0\n", "max_edge"),
        ("[prepare]\nquality = 0\n", "quality"),
    ],
)
def test_values_that_can_hang_a_run_are_refused_at_load_time(tmp_path, text, key):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(UsageError, match=key) as refused:
        load_config(str(cfg), {}, {})
    assert "\n" not in str(refused.value)


def test_flags_are_held_to_the_same_bounds():
    with pytest.raises(UsageError, match="workers"):
        load_config(None, {"workers": 0}, {})
    with pytest.raises(UsageError, match="max_in_flight"):
        load_config(None, {"max_in_flight": 0}, {})
    assert load_config(None, {"first_poll_delay": 0.0}, {}).first_poll_delay == 0.0  # poll at once is fine
    assert load_config(None, {}, {}).job_deadline == 1800.0
