"""The documentation keeps up with the code: generated references current, every command, option and key documented."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from tagger.cli import cli
from tagger.config import ALIASES, SECTIONS, Config

CHECKOUT = Path(__file__).resolve().parent.parent
DOCS = CHECKOUT / "docs"


def _generator():
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_references_are_current():
    gen = _generator()
    assert (DOCS / "commands.md").read_text(encoding="utf-8") == gen.commands_md(), (
        "docs/commands.md is stale: run `python docs/generate.py`"
    )
    assert (DOCS / "configuration.md").read_text(encoding="utf-8") == gen.configuration_md(), (
        "docs/configuration.md is stale: run `python docs/generate.py`"
    )


def test_check_mode_fails_on_a_stale_reference(tmp_path):
    # --check must be able to fail: a copy of the generator beside a stale commands.md says so.
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "generate.py").write_text((DOCS / "generate.py").read_text(encoding="utf-8"), encoding="utf-8")
    (docs / "commands.md").write_text("# Commands\n\nstale\n", encoding="utf-8")
    (docs / "configuration.md").write_text(_generator().configuration_md(), encoding="utf-8")
    (tmp_path / "config.example.toml").write_text(
        (CHECKOUT / "config.example.toml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    done = subprocess.run(
        [sys.executable, str(docs / "generate.py"), "--check"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "stale: commands.md" in done.stderr
    assert (docs / "commands.md").read_text(encoding="utf-8") == "# Commands\n\nstale\n"  # --check writes nothing


def test_every_command_and_option_has_help():
    gen = _generator()
    paths = [" ".join(path) for path, _ in gen.commands()]
    assert {"tagger run", "tagger status", "tagger export", "tagger retry", "tagger show"} <= set(paths)
    missing = []
    for path, command in gen.commands():
        if not (command.help or command.short_help):
            missing.append(" ".join(path))
        for param in command.params:
            if isinstance(param, click.Option) and not param.help and not param.hidden:
                missing.append(f"{' '.join(path)} {param.opts[0]}")
    assert missing == []
    text = (DOCS / "commands.md").read_text(encoding="utf-8")
    for path in paths:
        assert f"## `{path}`" in text


def test_every_setting_is_documented():
    gen = _generator()
    comments = gen.example_comments()
    keys = [key for keys in SECTIONS.values() for key in keys]
    settings = [ALIASES.get((section, key)) or key for section, names in SECTIONS.items() for key in names]
    assert sorted(settings) == sorted(f.name for f in Config.__dataclass_fields__.values())
    assert [key for key in keys if not comments.get(key)] == []  # each has its meaning in config.example.toml
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for section, names in SECTIONS.items():
        assert f"## `[{section}]`" in text
        for key in names:
            assert f"| `{key}` (" in text


def test_readme_is_short_and_every_link_resolves():
    readme = CHECKOUT / "README.md"
    assert readme.stat().st_size <= 12 * 1024
    pages = [readme, CHECKOUT / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(CHECKOUT)} -> {target}")
    assert broken == []


@pytest.mark.parametrize("command", ["run", "status", "export", "retry", "strip", "show"])
def test_readme_commands_exist(command):
    assert command in cli.commands
