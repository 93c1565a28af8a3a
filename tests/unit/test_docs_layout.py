"""The README's layout table and docs/ARCHITECTURE.md match the tree: every path and module they
name exists, and every package, module and test folder is named (a rename must update them)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).parents[2]
TICKED = re.compile(r"`([^`]+)`")
# top-level folders that are not the project's (generated or tools' own)
NOT_LAYOUT = {"reports", "build", "dist"}


def _table(text: str, heading: str) -> list[tuple[list[str], str]]:
    """Rows ``(paths in the first cell, the second cell)`` of the first table under ``heading``."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and line.startswith("|") and TICKED.search(cells[0]):  # not the header
            rows.append((TICKED.findall(cells[0]), cells[1]))
    return rows


def _modules(holds: str) -> set[str]:
    """Module and folder names a cell lists: `loop`, `sinks/{mongo,s3}`, `manifests/`."""
    names: set[str] = set()
    for token in TICKED.findall(holds):
        match = re.fullmatch(r"([a-z_0-9]+)(/(\{([a-z_0-9,]+)\})?)?", token)
        if not match:
            continue  # a command or a file with a dot: checked elsewhere, if at all
        if match.group(4):
            names.update(f"{match.group(1)}/{m}" for m in match.group(4).split(","))
        else:
            names.add(match.group(1) + ("/" if match.group(2) else ""))
    return names


def _package_entries(package: Path) -> set[str]:
    """What a package holds: its modules (no dunder files) and folders (trailing ``/``)."""
    out: set[str] = set()
    for entry in package.iterdir():
        if entry.name.startswith(("_", ".")) or entry.name.endswith(".egg-info"):
            continue
        if entry.is_dir():
            out.add(entry.name + "/")
        elif entry.suffix == ".py":
            out.add(entry.stem)
    return out


def _exists(package: Path, name: str) -> bool:
    if name.endswith("/"):
        return (package / name).is_dir()
    return (package / f"{name}.py").is_file() or (package / name).is_dir()


def test_every_path_in_the_layout_table_exists() -> None:
    rows = _table((REPO / "README.md").read_text(), "## Repository layout")
    assert rows, "README.md has no table under '## Repository layout'"
    missing = [p for paths, _ in rows for p in paths if not (REPO / p).exists()]
    assert not missing, f"the README's layout table names paths that do not exist: {missing}"


def test_the_layout_table_names_every_folder_package_and_module() -> None:
    rows = _table((REPO / "README.md").read_text(), "## Repository layout")
    named = {p for paths, _ in rows for p in paths}
    folders = [
        d.name
        for d in REPO.iterdir()
        if d.is_dir() and not d.name.startswith(".") and d.name not in NOT_LAYOUT and d.name != "docs"
    ]
    wanted = [f for f in folders if f not in ("services", "tests")]
    wanted += [f"services/{p.name}" for p in (REPO / "services").iterdir() if (p / "__init__.py").exists()]
    wanted += [
        f"tests/{d.name}" for d in (REPO / "tests").iterdir() if d.is_dir() and not d.name.startswith("_")
    ]
    unnamed = sorted(w for w in wanted if not any(n == w or n.startswith(w + "/") for n in named))
    assert not unnamed, f"the README's layout table does not name {unnamed}"
    for paths, holds in rows:
        for path in paths:
            package = REPO / path
            if not (path.startswith("services/") and (package / "__init__.py").exists()):
                continue
            listed = _modules(holds)
            ghosts = sorted(n for n in listed if not _exists(package, n))
            assert not ghosts, f"the layout row of {path} names {ghosts}, which {path} does not hold"
            top = {n.split("/", 1)[0] + ("/" if "/" in n else "") for n in listed}
            left_out = sorted(
                e for e in _package_entries(package) if e not in top and e.rstrip("/") not in top
            )
            assert not left_out, f"the layout row of {path} leaves out {left_out}"


def test_the_architecture_page_names_only_files_that_exist() -> None:
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    paths = [
        t
        for t in TICKED.findall(text)
        if "/" in t
        and t.split("/", 1)[0] in {"services", "manifests", "ca4", "notebooks", "tests", "scripts"}
    ]
    assert len(paths) > 20, (
        f"docs/ARCHITECTURE.md names only {len(paths)} paths; expected the event's whole path"
    )
    missing = [p for p in paths if not (REPO / p).exists()]
    assert not missing, f"docs/ARCHITECTURE.md names paths that do not exist: {missing}"
    for room_paths, holds in _table(text, "## The rooms"):
        room = REPO / room_paths[0]
        files = [t for t in TICKED.findall(holds) if re.fullmatch(r"[a-z_0-9]+(\.py|/)", t)]
        ghosts = [f for f in files if not (room / f).exists()]
        assert not ghosts, f"docs/ARCHITECTURE.md: {room_paths[0]} holds no {ghosts}"
