"""noxfile.py keeps one list of default sessions, and `make test` runs exactly that list."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).parents[2]


def _noxfile() -> ast.Module:
    return ast.parse((REPO / "noxfile.py").read_text())


def _default_list(tree: ast.Module) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "nox.options.sessions":
            return list(ast.literal_eval(node.value))
    raise AssertionError("noxfile.py sets no nox.options.sessions")


def _sessions(tree: ast.Module) -> dict[str, list[str]]:
    """Session name -> the keyword arguments of its @nox.session decorator."""
    out: dict[str, list[str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if isinstance(deco, ast.Call) and ast.unparse(deco.func) == "nox.session":
                out[node.name] = [k.arg or "**" for k in deco.keywords]
    return out


def test_the_default_list_names_defined_sessions_once() -> None:
    tree = _noxfile()
    defaults, sessions = _default_list(tree), _sessions(tree)
    unknown = [name for name in defaults if name not in sessions]
    assert not unknown, f"nox.options.sessions names {unknown}, which noxfile.py does not define"
    repeated = sorted({name for name in defaults if defaults.count(name) > 1})
    assert not repeated, f"nox.options.sessions lists {repeated} more than once"


def test_no_session_states_its_own_default() -> None:
    """A second place saying what runs by default (``default=``) would drift from the list."""
    flagged = {name: kw for name, kw in _sessions(_noxfile()).items() if "default" in kw}
    assert not flagged, f"sessions with their own default= (the list is the only source): {sorted(flagged)}"


def test_make_test_runs_plain_nox() -> None:
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe, "the Makefile has no test target"
    commands = [line.strip() for line in recipe.group(1).splitlines() if not line.strip().startswith("@echo")]
    assert commands == ["$(NOX)"], f"make test runs {commands}, expected only plain $(NOX) (the default list)"
