"""Go modules as the rehearsal's builds see them (the cluster's, ``build``, and the stand-ins',
``standins``): a go.mod's text read (its go directive, its replace directives, Kubernetes'
staging modules), one module version downloaded, and the wrapper module that builds the main
packages of several modules together; the error a build that fails raises.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rehearsal.build import Builder

GOMAIN = Path(__file__).resolve().parent / "gomain"  # our own main packages (see build.cluster_modules)
# The binaries are stripped (-ldflags -s -w): the compiler need not write DWARF either, about
# 10 % of a cold build's CPU (measured on client-go), with no change to what runs.
GCFLAGS = "-gcflags=all=-dwarf=false"


class BuildError(RuntimeError):
    """A part could not be built; the message names it and the command's last output."""


def staging_modules(gomod: str) -> list[str]:
    """The modules k8s.io/kubernetes replaces with ./staging/src paths, from its go.mod text."""
    return sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/src/", gomod, flags=re.MULTILINE)))


def module_replaces(gomod: str) -> list[str]:
    """A go.mod's replace directives that name another module (``a => b v1``), one per line;
    those to local paths are left out (they cannot leave the module)."""
    lines = []
    for block in re.findall(r"^replace\s*\((.*?)^\)", gomod, flags=re.MULTILINE | re.DOTALL):
        lines += block.splitlines()
    lines += re.findall(r"^replace\s+([^(\s].*)$", gomod, flags=re.MULTILINE)
    out = []
    for raw in lines:
        line = raw.split("//")[0].strip()
        if "=>" in line and not line.split("=>")[1].strip().startswith((".", "/")):
            out.append(line)
    return out


def module_file(builder: Builder, module: str, version: str) -> tuple[dict[str, Any], str]:
    """``go mod download -json`` of one module version, and its go.mod text."""
    info: dict[str, Any] = json.loads(builder.go("mod", "download", "-json", f"{module}@{version}"))
    return info, Path(str(info["GoMod"])).read_text()


def go_directive(gomod: str) -> tuple[int, ...]:
    """A go.mod's ``go 1.25.5`` line as (1, 25, 5); (1, 22) when it has none."""
    m = re.search(r"^go (\d+(?:\.\d+)*)", gomod, flags=re.MULTILINE)
    return tuple(int(x) for x in m.group(1).split(".")) if m else (1, 22)


def merge_replaces(replaces: list[str]) -> list[str]:
    """Replace directives of several modules, once each; two that replace the same module
    differently cannot both hold, and stop the build with both named."""
    chosen: dict[str, str] = {}
    for line in replaces:
        left = line.split("=>")[0].strip()
        if chosen.setdefault(left, line) != line:
            raise BuildError(f"two modules replace {left} differently: '{chosen[left]}' and '{line}'")
    return list(chosen.values())


def wrapper_build(
    builder: Builder,
    name: str,
    requires: list[tuple[str, str]],
    packages: list[str],
    *,
    replaces: list[str],
    out: Path,
    flags: str,
    go: tuple[int, ...] = (1, 24),
    tags: str = "",
    mains: Sequence[str] = (),
) -> None:
    """Build ``packages`` of the ``requires`` modules, and our own ``mains`` (gomain/NAME), in
    a wrapper module that repeats their replace directives (``go install pkg@version`` refuses
    a module that has any)."""
    wrapper = builder.scratch / f"wrapper-{name}"
    wrapper.mkdir(parents=True, exist_ok=True)
    for main in mains:
        (wrapper / "cmd" / main).mkdir(parents=True, exist_ok=True)
        shutil.copy(GOMAIN / main / "main.go", wrapper / "cmd" / main / "main.go")
    ours = [f"ca4.local/rehearsal/{name}/cmd/{m}" for m in mains]
    lines = [
        f"module ca4.local/rehearsal/{name}",
        f"go {'.'.join(map(str, go))}",
        "require (",
        *(f"\t{module} {version}" for module, version in requires),
        ")",
        "replace (",
        *(f"\t{r}" for r in replaces),
        ")",
    ]
    (wrapper / "go.mod").write_text("\n".join(lines) + "\n")
    tagged = [f"-tags={tags}"] if tags else []
    # our mains first, on their own: a mistake in them shows in minutes, not at the end; what
    # they compile is in the build cache for the rest (the same module graph)
    for group in (ours, packages) if ours else (packages,):
        builder.go(
            "build", "-trimpath", GCFLAGS, *tagged, f"-ldflags={flags}", "-o", f"{out}/", *group, cwd=wrapper
        )
