"""Start-up: a nightly no-op, ``--help`` and ``status`` import only what they use; the client is built when needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from importlib.metadata import version
from pathlib import Path

import pytest

from tagger.client import cloudsight, protocol
from tagger.client.lazy import LazyAPI
from tagger.config import Config
from tagger.errors import UsageError
from tagger.pipeline.runner import make_api

#: What a command that sends nothing, decodes nothing and draws no bar has no use for.
HEAVY = (
    "requests",
    "urllib3",
    "oauthlib",
    "requests_oauthlib",
    "tenacity",
    "PIL",
    "tqdm",
    "portalocker",
    "importlib.metadata",
    "simplemma",
)

# The command, run as the console script runs it; the modules it imported are written to a file at exit.
_SCRIPT = """
import atexit, json, sys
dump = sys.argv.pop(1)
def _dump():
    with open(dump, "w") as f:
        json.dump(sorted(sys.modules), f)
atexit.register(_dump)
from tagger.__main__ import main
main()
"""


def _command(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``tagger ARGS`` in a process of its own; its result and the modules it had imported when it exited."""
    dump = tmp_path / f"modules-{len(list(tmp_path.glob('modules-*')))}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}
    proc = subprocess.run(
        [sys.executable, "-P", "-c", _SCRIPT, str(dump), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    return proc, set(json.loads(dump.read_text()))


def _heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)}


def test_a_nightly_no_op_imports_no_http_client_pillow_or_bar(photos, emulator, tmp_path):
    cfg = tmp_path / "fast.toml"
    cfg.write_text("[run]\nfirst_poll_delay = 0.1\npoll_interval = 0.05\nmax_poll_interval = 0.2\n")
    ledger = str(tmp_path / "ledger.sqlite")
    common = ["--config", str(cfg), "--endpoint", emulator.url, "--api-key", emulator.key, "--ledger", ledger]
    first, first_modules = _command(tmp_path, "run", str(photos), *common, "--quiet")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("new 6, submitted 6, captioned 6,")
    assert emulator.counters()["submissions"] == 6
    assert "requests" in first_modules  # the run that sends builds its client (its workers decode)
    requests_before = emulator.counters()["requests"]

    again, modules = _command(tmp_path, "run", str(photos), *common, "--quiet")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("new 0, submitted 0, captioned 0,")
    assert emulator.counters()["requests"] == requests_before  # nothing sent, nothing polled
    assert _heavy(modules) == set()
    assert "tagger.client.cloudsight" not in modules


def test_help_status_and_a_dry_run_start_without_the_http_client(photos, emulator, tmp_path):
    helped, modules = _command(tmp_path, "--help")
    assert helped.returncode == 0 and "Usage:" in helped.stdout
    assert _heavy(modules) == set()
    assert "tagger.client.cloudsight" not in modules

    dry, modules = _command(tmp_path, "run", str(photos), "--dry-run", "--ledger", str(tmp_path / "none.sqlite"))
    assert dry.returncode == 0, dry.stderr  # no key: a client that is never called, so never built
    assert "6 credits would be spent" in dry.stdout
    assert "tagger.client.cloudsight" not in modules and "requests" not in modules

    ledger = str(tmp_path / "ledger.sqlite")
    ran, _ = _command(tmp_path, "run", str(photos), "--emulator", "--ledger", ledger, "--quiet")
    assert ran.returncode == 0, ran.stderr
    status, modules = _command(tmp_path, "status", "--ledger", ledger, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)
    assert _heavy(modules) == set()


def test_a_lazy_client_is_built_once_when_first_used(emulator, tmp_path):
    from helpers import make_photo

    built: list[cloudsight.API] = []

    def build() -> cloudsight.API:
        api = cloudsight.API(cloudsight.SimpleAuth(emulator.key), base_url=emulator.url)
        built.append(api)
        return api

    lazy = LazyAPI(build, emulator.url + "/")
    assert lazy.base_url == emulator.url  # as API normalises it
    assert lazy.credit_balance is None and not lazy.built and built == []
    photo = make_photo(tmp_path / "p.jpg", 4).read_bytes()
    answers: list[dict] = []
    threads = [threading.Thread(target=lambda: answers.append(lazy.image_request(photo, "p.jpg"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and lazy.built  # four threads reached for it at once: one client
    assert len({a["token"] for a in answers}) == 4
    assert emulator.counters()["submissions"] == 4
    assert lazy.credit_balance == built[0].credit_balance  # the client's, whichever answer came last
    assert emulator.credits <= lazy.credit_balance < emulator.credits + 4
    with lazy:
        pass
    with pytest.raises(AttributeError):
        lazy.no_such_attribute  # noqa: B018  # the client's missing attribute, not a hidden one
    unused = LazyAPI(build, emulator.url)
    unused.close()  # closing a client never built builds nothing
    assert len(built) == 1


def test_make_api_lazy_checks_the_settings_at_once():
    with pytest.raises(UsageError, match="no API key"):
        make_api(Config(api_key=""), lazy=True)
    with pytest.raises(UsageError):
        make_api(Config(api_key="bad\nkey"), lazy=True)
    api = make_api(Config(api_key="k", endpoint="http://127.0.0.1:9/v1/"), lazy=True)
    assert isinstance(api, LazyAPI) and not api.built and api.base_url == "http://127.0.0.1:9/v1"


def test_the_client_module_re_exports_the_protocol_unchanged():
    from tagger import cloudsight as ported

    assert ported is cloudsight
    for name in protocol.__all__:
        assert name in cloudsight.__all__
        assert getattr(cloudsight, name) is getattr(protocol, name)
    assert issubclass(cloudsight.RateLimited, cloudsight.TransientError)
    assert issubclass(cloudsight.TransientError, cloudsight.APIError)
    assert cloudsight.STATUS_COMPLETED == "completed" and cloudsight.REASON_UNSURE == "unsure"
    assert cloudsight.DEFAULT_BASE_URL == "https://api.cloudsight.ai/v1"


def test_the_dictionaries_versions_are_what_importlib_metadata_says():
    from tagger.keywords.language import LIBRARY_VERSIONS, _library_version

    assert LIBRARY_VERSIONS == {"simplemma": version("simplemma"), "stopwords": version("stopwords")}
    assert _library_version("requests-oauthlib") == version("requests-oauthlib")
    assert _library_version("Pillow") == version("pillow")
