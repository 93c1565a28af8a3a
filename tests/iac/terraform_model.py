"""A small read-only model of ca4/terraform, parsed with python-hcl2, for the static tests.

Expressions stay strings as HCL wrote them (``"${var.name}"``); the helpers follow the few
indirections the tests need: a module's variable back to the root module's argument, a
root variable to its default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import hcl2

REPO = Path(__file__).resolve().parents[2]
TF_ROOT = REPO / "ca4" / "terraform"
ROOT = "root"

_OPTIONS = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
_VAR = re.compile(r"^\$\{var\.([a-z0-9_]+)\}$")
_EACH = re.compile(r"^\$\{each\.(key|value)(?:\.([a-z0-9_]+))?\}$")
_LOCAL = re.compile(r"^\$\{local\.([a-z0-9_]+)\}$")
_MODULE_OUTPUT = re.compile(r"^\$\{module\.([a-z0-9_]+)\.([a-z0-9_]+)\}$")


@dataclass(frozen=True)
class Block:
    """One top-level block: a resource, data source, variable, output or module call."""

    kind: str  # resource | data | variable | output | module
    type: str  # resource or data source type; "" for the other kinds
    name: str
    body: dict[str, Any]
    module: str  # "root" or the folder name under modules/
    file: Path

    @property
    def address(self) -> str:
        """Where the block is, as Terraform and checkov name it."""
        local = ".".join(p for p in (self.kind if self.kind == "data" else "", self.type, self.name) if p)
        return local if self.module == ROOT else f"module.{self.module}.{local}"

    def first(self, block_name: str) -> dict[str, Any]:
        """The first nested block called ``block_name`` (python-hcl2 lists nested blocks)."""
        blocks = self.body.get(block_name) or [{}]
        return blocks[0] if isinstance(blocks, list) else blocks


@dataclass
class Module:
    """The blocks of one folder of .tf files."""

    name: str
    path: Path
    blocks: list[Block] = field(default_factory=list)
    locals: dict[str, Any] = field(default_factory=dict)


def load_hcl(path: Path) -> dict[str, Any]:
    """One HCL file in the classic python-hcl2 shape (unquoted strings, blocks as lists)."""
    with path.open() as handle:
        return hcl2.load(handle, serialization_options=_OPTIONS)


def _parse_module(name: str, path: Path) -> Module:
    module = Module(name=name, path=path)
    for tf in sorted(path.glob("*.tf")):
        doc = load_hcl(tf)
        for kind in ("resource", "data"):
            for entry in doc.get(kind, []):
                for type_, named in entry.items():
                    for block_name, body in named.items():
                        module.blocks.append(Block(kind, type_, block_name, body, name, tf))
        for kind in ("variable", "output", "module"):
            for entry in doc.get(kind, []):
                for block_name, body in entry.items():
                    module.blocks.append(Block(kind, "", block_name, body, name, tf))
        for entry in doc.get("locals", []):
            module.locals.update(entry)
    return module


class TerraformTree:
    """The root module and every module under modules/."""

    def __init__(self, root: Path = TF_ROOT) -> None:
        self.root = root
        self.modules: dict[str, Module] = {ROOT: _parse_module(ROOT, root)}
        for path in sorted((root / "modules").iterdir()):
            if path.is_dir():
                self.modules[path.name] = _parse_module(path.name, path)

    def blocks(self, kind: str, type_: str | None = None, module: str | None = None) -> Iterator[Block]:
        """Every block of a kind, optionally of one type and in one module."""
        for mod in self.modules.values():
            if module is not None and mod.name != module:
                continue
            for block in mod.blocks:
                if block.kind == kind and (type_ is None or block.type == type_):
                    yield block

    def resources(self, type_: str | None = None, module: str | None = None) -> list[Block]:
        """Managed resources."""
        return list(self.blocks("resource", type_, module))

    def _find(self, kind: str, module: str, type_: str | None, name: str) -> Block:
        """One block of a kind by name; a clear failure when it is missing."""
        for block in self.blocks(kind, type_, module):
            if block.name == name:
                return block
        what = ".".join(p for p in ("data" if kind == "data" else "", type_ or kind, name) if p)
        raise AssertionError(f"{what} is not declared in module {module}")

    def resource(self, module: str, type_: str, name: str) -> Block:
        """One resource."""
        return self._find("resource", module, type_, name)

    def data(self, module: str, type_: str, name: str) -> Block:
        """One data source."""
        return self._find("data", module, type_, name)

    def variable(self, module: str, name: str) -> Block:
        """One variable declaration."""
        return self._find("variable", module, None, name)

    def output(self, module: str, name: str) -> Block:
        """One output."""
        return self._find("output", module, None, name)

    @cached_property
    def module_calls(self) -> dict[str, Block]:
        """The root module's ``module`` blocks by the folder they call."""
        calls = {}
        for block in self.blocks("module", module=ROOT):
            source = block.body["source"]
            calls[Path(source).name] = block
        return calls

    def to_root(self, module: str, expression: Any) -> Any:
        """Follow ``${var.x}`` of a module to the expression the root module passes for it."""
        while module != ROOT and isinstance(expression, str) and (m := _VAR.match(expression)):
            call = self.module_calls[module]
            if m.group(1) not in call.body:
                default = self.variable(module, m.group(1)).body.get("default")
                return default
            expression = call.body[m.group(1)]
            module = ROOT
        return expression

    def root_default(self, expression: Any) -> Any:
        """The default of a root ``${var.x}`` (or the expression itself when it is not one)."""
        if isinstance(expression, str) and (m := _VAR.match(expression)):
            return self.variable(ROOT, m.group(1)).body.get("default")
        return expression

    def module_output(self, expression: str) -> tuple[str, Any]:
        """For ``${module.m.o}``: the module and the value expression of its output ``o``."""
        m = _MODULE_OUTPUT.match(expression)
        if not m:
            raise AssertionError(f"{expression!r} is not a module output reference")
        return m.group(1), self.output(m.group(1), m.group(2)).body["value"]

    def evaluate(self, module: str, expression: Any, each: tuple[str, Any] | None = None) -> Any:
        """Resolve ``each.*``, ``var.*`` (through module calls to root defaults) and ``local.*``.

        Anything else (function calls, resource attributes) is returned unchanged.
        """
        if not isinstance(expression, str):
            return expression
        if each is not None and (m := _EACH.match(expression)):
            key, value = each
            if m.group(1) == "key":
                return key
            return value if m.group(2) is None else value[m.group(2)]
        if m := _LOCAL.match(expression):
            return self.modules[module].locals[m.group(1)]
        if _VAR.match(expression):
            return self.root_default(self.to_root(module, expression))
        return expression

    def expand(self, block: Block) -> list[tuple[tuple[str, Any] | None, dict[str, Any]]]:
        """The instances of a resource: one per ``for_each`` element (with its ``each``)."""
        for_each = block.body.get("for_each")
        if for_each is None:
            return [(None, block.body)]
        if m := re.match(r"^\$\{toset\((var\.[a-z0-9_]+)\)\}$", for_each):
            items = self.evaluate(block.module, "${" + m.group(1) + "}")
            return [((v, v), block.body) for v in items]
        collection = self.evaluate(block.module, for_each)
        if not isinstance(collection, dict):
            raise AssertionError(f"{block.address}: cannot expand for_each = {for_each!r}")
        return [((k, v), block.body) for k, v in collection.items()]

    def nested_blocks(self, module: str, body: dict[str, Any], name: str) -> list[dict[str, Any]]:
        """The nested blocks ``name`` of a body: the static ones, then those a ``dynamic "name"``
        generates, with ``<name>.key`` / ``<name>.value`` replaced by each element of its
        ``for_each`` (which must resolve to a list or map, e.g. through ``local.*``)."""
        blocks = list(body.get(name, []))
        for entry in body.get("dynamic", []):
            if name not in entry:
                continue
            dynamic = entry[name]
            collection = self.evaluate(module, dynamic["for_each"])
            if isinstance(collection, list):
                items = [(v, v) for v in collection]
            elif isinstance(collection, dict):
                items = list(collection.items())
            else:
                raise AssertionError(f"dynamic {name!r}: cannot expand for_each = {dynamic['for_each']!r}")
            (content,) = dynamic["content"]
            for key, value in items:
                blocks.append(_substitute(content, name, key, value))
        return blocks


def _substitute(node: Any, iterator: str, key: Any, value: Any) -> Any:
    """``content`` of a dynamic block for one element: ``${it.value}`` becomes the value itself
    inside templates, a bare ``it.value`` (inside an expression) its HCL literal."""
    if isinstance(node, dict):
        return {k: _substitute(v, iterator, key, value) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, iterator, key, value) for v in node]
    if not isinstance(node, str):
        return node
    for attr, item in (("key", key), ("value", value)):
        if node == f"${{{iterator}.{attr}}}":
            return item
        node = node.replace(f"${{{iterator}.{attr}}}", str(item))
        node = node.replace(f"{iterator}.{attr}", json.dumps(item))
    return node


def is_var(expression: Any, name: str) -> bool:
    """True when the expression is exactly ``${var.<name>}``."""
    return expression == f"${{var.{name}}}"
