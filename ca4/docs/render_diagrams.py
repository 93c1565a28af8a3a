"""Render ca4/docs/*.puml to SVG with Debian's plantuml and graphviz, and check the results.

    python ca4/docs/render_diagrams.py           render every diagram, then check it
    python ca4/docs/render_diagrams.py --check   only check the committed SVGs

Debian's plantuml needs graphviz for every diagram but sequence diagrams, and without it
(or with a broken one) it still exits 0 after drawing an error message into the image.
So this script checks `plantuml -testdot` before rendering, and every SVG afterwards:
no error text in it, and the source PlantUML embeds in it equal to the .puml beside it
(so a committed SVG can never be older than its source). Standard library only.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

DOCS = Path(__file__).resolve().parent

# What plantuml writes into the image instead of the diagram when something is wrong.
ERROR_MARKERS = (
    "Cannot find Graphviz",
    "Dot Executable",
    "Dot executable",
    "java.io.IOException",
    "Syntax Error",
    "An error has occured",
    "An error has occurred",
    "Cannot run program",
)


def embedded_source(svg_text: str) -> str | None:
    """The diagram source plantuml keeps in a comment at the end of the SVG."""
    comments = [c for c in re.findall(r"<!--(.*?)-->", svg_text, flags=re.DOTALL) if "@startuml" in c]
    if not comments:
        return None
    last = comments[-1]
    end = last.find("@enduml")
    return last[last.index("@startuml") : end + len("@enduml")] if end != -1 else None


def as_embedded(puml_text: str) -> str:
    """The .puml source as plantuml embeds it: no ' comment lines, no "--" (XML comments forbid it)."""
    body = puml_text[puml_text.index("@startuml") : puml_text.rindex("@enduml") + len("@enduml")]
    text = "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("'"))
    while "--" in text:
        text = text.replace("--", "- -")
    return text


def svg_problems(puml: Path, svg: Path) -> list[str]:
    """Everything wrong with ``svg`` as the rendering of ``puml``; empty when it is good."""
    if not svg.is_file():
        return [f"{svg.name}: missing (render it with `nox -s diagrams`)"]
    text = svg.read_text(encoding="utf-8")
    problems = []
    try:
        root = ET.fromstring(text)  # noqa: S314 - our own file
    except ET.ParseError as exc:
        return [f"{svg.name}: not well-formed XML ({exc})"]
    if not root.tag.endswith("svg"):
        problems.append(f"{svg.name}: the root element is {root.tag!r}, not svg")
    problems += [f"{svg.name}: contains plantuml's error text {m!r}" for m in ERROR_MARKERS if m in text]
    source = embedded_source(text)
    if source is None:
        problems.append(f"{svg.name}: no embedded diagram source (not rendered by plantuml?)")
    elif source != as_embedded(puml.read_text(encoding="utf-8")):
        problems.append(f"{svg.name}: older than {puml.name} (its embedded source differs): render it again")
    return problems


def check(docs: Path) -> list[str]:
    """Problems of every diagram in ``docs``."""
    pumls = sorted(docs.glob("*.puml"))
    if not pumls:
        return [f"{docs}: no .puml diagrams found"]
    return [p for puml in pumls for p in svg_problems(puml, puml.with_suffix(".svg"))]


def tool_problems() -> list[str]:
    """plantuml and a graphviz that plantuml can run."""
    missing = [tool for tool in ("plantuml", "dot") if shutil.which(tool) is None]
    if missing:
        return [
            f"{', '.join(missing)} not found: install Debian's plantuml and graphviz "
            "(ca4/docs/ensure_diagram_tools.sh does it idempotently)"
        ]
    result = subprocess.run(
        ["plantuml", "-testdot"], capture_output=True, text=True, timeout=120, check=False
    )
    report = result.stdout + result.stderr
    if "Installation seems OK" not in report:
        return [f"plantuml -testdot does not find a working graphviz:\n{report.strip()}"]
    return []


def render(docs: Path) -> None:
    """Render every .puml in ``docs`` to an SVG next to it."""
    pumls = [str(p) for p in sorted(docs.glob("*.puml"))]
    # -failfast2: stop with a non-zero exit on a syntax error instead of drawing it
    subprocess.run(["plantuml", "-tsvg", "-failfast2", "-charset", "UTF-8", *pumls], check=True, timeout=300)


def main(argv: list[str] | None = None) -> int:
    """Render (unless --check) and check; exit 1 with the reasons when anything is wrong."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the committed SVGs")
    parser.add_argument("--docs", type=Path, default=DOCS, help="folder of the .puml files")
    args = parser.parse_args(argv)

    if not args.check:
        problems = tool_problems()
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
        render(args.docs)
    problems = check(args.docs)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    for svg in sorted(args.docs.glob("*.svg")):
        print(f">> {svg.name}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
