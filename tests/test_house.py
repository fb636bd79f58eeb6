"""The house rules: each subpackage's "May import:" docstring and the import contracts say the same thing.

The contracts (``[tool.importlinter]`` in pyproject.toml) are what ``lint-imports`` enforces; the
docstrings are what a reader sees. These tests fail when one changes without the other. They also
run each ``bench/`` script's ``--help`` from the checkout, with no ``sys.path`` edits.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import tagger

CHECKOUT = Path(__file__).resolve().parent.parent
PACKAGE = Path(tagger.__file__).resolve().parent
# The subpackages whose docstring states what they may import; each has one contract.
RULED = [
    "client",
    "emulator",
    "exports",
    "keywords",
    "ledger",
    "pipeline",
    "prepare",
    "review",
    "shared",
    "sheet",
    "sidecars",
]
# Kept out of every subpackage's contract: one contract of their own says nothing but the CLI reaches them.
CLI_ONLY = {"tagger.cli", "tagger.__main__", "click"}


def _contracts() -> list[dict]:
    config = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())
    linter = config["tool"]["importlinter"]
    assert linter["root_package"] == "tagger"
    assert linter["include_external_packages"] is True  # third-party packages are part of the rules
    return linter["contracts"]


def _parts() -> set[str]:
    """Every top-level module and subpackage of tagger, as import names (``__main__`` aside)."""
    parts = {f"tagger.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")}
    parts |= {f"tagger.{p.name}" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    return parts


@functools.cache
def _third_party_imports() -> frozenset[str]:
    """Top-level names of the non-standard-library packages any module of tagger imports."""
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found |= {n.split(".")[0] for n in names}
    return frozenset(found - set(sys.stdlib_module_names) - {"__future__", "tagger"})


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def _import_names(distribution: str) -> set[str]:
    """The top-level import names a distribution (as the docstring spells it: "Pillow") provides."""

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    provided = _distributions()
    names = {top for top, dists in provided.items() if norm(distribution) in map(norm, dists)}
    names = {n for n in names if not n.startswith("_")}  # private extension modules (_pillow_heif)
    assert names, f"{distribution!r} names no installed distribution"
    return names


def may_import(package: str) -> set[str]:
    """What ``package``'s docstring allows it to import, as import names (the standard library left out)."""
    doc = importlib.import_module(package).__doc__ or ""
    found = re.search(r"May import:(.*?)\.(?:\s|$)", doc, re.S)
    assert found, f"{package}'s docstring has no 'May import:' sentence"
    text = re.sub(r"\([^)]*\)", "", " ".join(found.group(1).split()))  # (asides) name no package
    allowed: set[str] = set()
    for item in re.split(r",|\band\b", text):
        item = item.strip()
        if item in ("", "the standard library"):
            continue
        if item.startswith("every other part of tagger"):
            except_ = set(re.findall(r"``(tagger\.\w+)``", item))
            allowed |= _parts() - {package} - except_
            continue
        if named := re.fullmatch(r"(?:the package's )?``(tagger\.[\w.]+)``", item):
            name = named.group(1)
            if name != "tagger.__version__":  # the package root, every module's parent: no rule can forbid it
                allowed.add(name)
            continue
        assert "``" not in item and " " not in item, f"{package}: cannot read {item!r} in 'May import:'"
        allowed |= _import_names(item)
    return allowed


def _universe() -> set[str]:
    """Everything a contract speaks of: all of tagger and every third-party package tagger or a rule names."""
    third = set(_third_party_imports())
    for name in RULED:
        third |= {n for n in may_import(f"tagger.{name}") if not n.startswith("tagger.")}
    return (_parts() | third) - CLI_ONLY


@pytest.mark.parametrize("name", RULED)
def test_docstring_and_contract_agree(name: str) -> None:
    """The contract of each subpackage forbids exactly what its docstring does not allow."""
    package = f"tagger.{name}"
    allowed = may_import(package)
    assert not allowed & CLI_ONLY, f"{package} may not import the CLI or click"
    matching = [c for c in _contracts() if c["source_modules"] == [package]]
    assert len(matching) == 1, f"one contract for {package}, found {len(matching)}"
    [contract] = matching
    assert contract["type"] == "forbidden"
    assert contract.get("allow_indirect_imports") is True  # the docstrings speak of direct imports
    forbidden = set(contract["forbidden_modules"])
    assert len(forbidden) == len(contract["forbidden_modules"])
    expected = _universe() - {package} - allowed
    assert forbidden - expected == set(), f"{package}: the contract forbids what its docstring allows"
    assert expected - forbidden == set(), (
        f"{package}: the docstring does not allow these, the contract must forbid them"
    )


def test_library_never_imports_the_cli() -> None:
    """One contract: only the CLI (and ``python -m tagger``) reach tagger.cli and click."""
    [contract] = [c for c in _contracts() if set(c["forbidden_modules"]) == CLI_ONLY]
    assert contract.get("allow_indirect_imports", False) is False
    assert set(contract["source_modules"]) == _parts() - CLI_ONLY


def test_ruled_subpackages_are_every_subpackage() -> None:
    """A new subpackage needs a 'May import:' docstring and its contract."""
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages == set(RULED)


def test_the_reader_sees_known_cases() -> None:
    """The docstring reader itself: spot checks of what it reads."""
    assert may_import("tagger.ledger") == {"sqlite_utils", "portalocker", "tagger.errors"}
    assert may_import("tagger.sheet") == {"PIL", "tagger.prepare", "tagger.exports", "tagger.atomic", "tagger.errors"}
    assert {"tqdm", "tagger.client", "tagger.prepare", "tagger.config"} <= may_import("tagger.pipeline")
    assert "tagger.cli" not in may_import("tagger.pipeline")
    assert "tagger.pipeline" not in may_import("tagger.pipeline")


# The scripts, not the modules they share with the tests (symbolic links to tests/: corpus, helpers).
BENCH = sorted(p for p in (CHECKOUT / "bench").glob("*.py") if not p.is_symlink())


@pytest.mark.parametrize("script", BENCH, ids=[p.name for p in BENCH])
def test_bench_script_help(script: Path) -> None:
    """Each bench script runs from the checkout as it is (no sys.path edits) and explains itself."""
    assert "sys.path" not in script.read_text(), f"{script.name} edits sys.path"
    # As a user runs it: the script's own folder first on sys.path (conftest sets PYTHONSAFEPATH for the CLI tests).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}
    done = subprocess.run(
        [sys.executable, str(script), "--help"], cwd=CHECKOUT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: "), done.stdout


def test_every_module_imports() -> None:
    """Every module of the installed package imports on its own (the fast loop, ``-m "not slow"``, runs this too)."""
    names = sorted(
        ".".join(("tagger", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        for p in PACKAGE.rglob("*.py")
        if p.name != "__main__.py"  # runs the CLI
    )
    assert len(names) > 70
    for name in names:
        importlib.import_module(name)
