"""Rewrite the import contracts in pyproject.toml from the subpackages' 'May import:' docstrings.

    python tests/house_contracts.py   # after changing a docstring, or adding a subpackage or a dependency

tests/test_house.py reads the docstrings the same way and fails when the two disagree.
"""

import importlib.util
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
spec = importlib.util.spec_from_file_location("th", Path(__file__).with_name("test_house.py"))
th = importlib.util.module_from_spec(spec)
spec.loader.exec_module(th)


def fmt_list(items, indent="    "):
    items = sorted(items, key=lambda n: (n.startswith("tagger."), n.lower()))
    lines, cur = [], indent
    for it in items:
        piece = f'"{it}", '
        if len(cur) + len(piece) > 116:
            lines.append(cur.rstrip())
            cur = indent
        cur += piece
    lines.append(cur.rstrip())
    return "\n".join(lines)


out = []
parts = th._parts()
out.append(
    """[[tool.importlinter.contracts]]
name = "Only the CLI reaches tagger.cli and click: the library works without them"
type = "forbidden"
source_modules = [
"""
    + fmt_list(parts - th.CLI_ONLY)
    + """
]
forbidden_modules = ["tagger.cli", "tagger.__main__", "click"]
"""
)
uni = th._universe()
for name in th.RULED:
    pkg = f"tagger.{name}"
    forb = uni - {pkg} - th.may_import(pkg)
    out.append(
        f'''[[tool.importlinter.contracts]]
name = "{pkg} imports only what its docstring's 'May import:' allows"
type = "forbidden"
source_modules = ["{pkg}"]
allow_indirect_imports = true  # the rule is about its own imports
forbidden_modules = [
'''
        + fmt_list(forb)
        + """
]
"""
    )
p = open(Path(__file__).parent.parent / "pyproject.toml").read()
a = p.index("[[tool.importlinter.contracts]]")
rest = p[a:]
# contracts run to the end of the importlinter block: find next top-level table that is not a contract
m = re.search(r"\n\[(?!\[tool\.importlinter\.contracts\])", rest)
end = a + (m.start() + 1 if m else len(rest))
p = p[:a] + "\n".join(out) + ("\n" + p[end:] if m else "")
open("pyproject.toml", "w").write(p)
