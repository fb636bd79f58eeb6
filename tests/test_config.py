"""Settings precedence: flag > environment > config file > default."""

from __future__ import annotations

import pytest

from tagger.config import Config, load_config
from tagger.errors import UsageError


def test_precedence(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[service]\nendpoint = "http://file/v1"\napi_key = "filekey"\nlocale = "de-DE"\n[run]\nworkers = 3\n')
    env = {"CLOUDSIGHT_ENDPOINT": "http://env/v1", "CLOUDSIGHT_API_KEY": "envkey"}
    c = load_config(str(cfg), {"endpoint": "http://flag/v1", "workers": None}, env)
    assert (c.endpoint, c.api_key, c.locale, c.workers) == ("http://flag/v1", "envkey", "de-DE", 3)
    assert load_config(None, {}, {}).endpoint == Config().endpoint


def test_example_config_documents_every_key():
    import dataclasses
    import tomllib
    from pathlib import Path

    example = tomllib.loads((Path(__file__).parent.parent / "config.example.toml").read_text())
    keys = {k for section in example.values() for k in section}
    assert keys == {f.name for f in dataclasses.fields(Config)}
    assert load_config(str(Path(__file__).parent.parent / "config.example.toml"), {}, {}) == Config()


@pytest.mark.parametrize(
    "text, message",
    [
        ("[run]\nworkers = 'many'\n", "workers must be a int"),
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
