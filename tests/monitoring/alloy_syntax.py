"""A reader for Grafana Alloy's configuration syntax, enough to check config.alloy offline.

Alloy itself cannot run here and its Go parser is not served by the module proxy this
project may use, so this follows the syntax reference
(https://grafana.com/docs/alloy/latest/get-started/configuration-syntax/): blocks
``name.sub "label" { ... }``, attributes ``name = expression``, expressions of literals
(strings with escapes, raw `strings`, numbers, booleans, null), lists, objects, references
``a.b.c``, indexing, calls, unary and binary operators; ``//``, ``#`` and ``/* */`` comments.
A syntax error raises ``AlloySyntaxError`` with its line; the result is a tree the tests walk
for component names, required arguments and references between components.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r]+)
  | (?P<nl>\n)
  | (?P<comment>//[^\n]*|\#[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[-+*/%^<>!=.,{}\[\]()])
    """,
    re.VERBOSE | re.DOTALL,
)
_BINARY = {"==", "!=", "<", ">", "<=", ">=", "&&", "||", "+", "-", "*", "/", "%", "^"}


class AlloySyntaxError(ValueError):
    """The file is not valid Alloy syntax."""


@dataclass
class Ref:
    """A reference expression such as ``discovery.relabel.pods.output``."""

    path: str


@dataclass
class Call:
    """A function call such as ``sys.env("HOSTNAME")``."""

    name: str
    args: list[Any]


@dataclass
class Block:
    """``name "label" { body }``: attributes and nested blocks, in order."""

    name: str
    label: str | None
    line: int
    attrs: dict[str, Any] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

    def children(self, name: str) -> list[Block]:
        """Nested blocks called ``name``."""
        return [b for b in self.blocks if b.name == name]


@dataclass
class _Tok:
    kind: str
    text: str
    line: int


def _tokens(text: str) -> list[_Tok]:
    out, pos, line = [], 0, 1
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise AlloySyntaxError(f"line {line}: unexpected character {text[pos]!r}")
        kind = match.lastgroup or ""
        token = match.group()
        if kind not in ("ws", "comment"):
            out.append(_Tok(kind, token, line))
        line += token.count("\n")
        pos = match.end()
    out.append(_Tok("eof", "", line))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    # --- helpers ---
    def peek(self, offset: int = 0) -> _Tok:
        return self.toks[min(self.i + offset, len(self.toks) - 1)]

    def skip_newlines(self) -> None:
        while self.peek().kind == "nl":
            self.i += 1

    def take(self, kind: str, text: str | None = None) -> _Tok:
        tok = self.peek()
        if tok.kind != kind or (text is not None and tok.text != text):
            want = text or kind
            raise AlloySyntaxError(f"line {tok.line}: expected {want!r}, found {tok.text or tok.kind!r}")
        self.i += 1
        return tok

    def at_op(self, text: str) -> bool:
        tok = self.peek()
        return tok.kind == "op" and tok.text == text

    # --- statements ---
    def body(self, until: str | None) -> Block:
        block = Block("", None, self.peek().line)
        while True:
            self.skip_newlines()
            tok = self.peek()
            if until is None and tok.kind == "eof":
                return block
            if until is not None and self.at_op(until):
                return block
            if tok.kind != "ident":
                raise AlloySyntaxError(
                    f"line {tok.line}: expected an attribute or a block, found {tok.text!r}"
                )
            name = self.take("ident").text
            if self.at_op("="):
                self.i += 1
                if name in block.attrs:
                    raise AlloySyntaxError(f"line {tok.line}: attribute {name!r} set twice")
                block.attrs[name] = self.expr()
            else:
                while self.at_op("."):
                    self.i += 1
                    name += "." + self.take("ident").text
                label = None
                if self.peek().kind == "string":
                    label = json.loads(self.take("string").text)
                self.take("op", "{")
                inner = self.body("}")
                self.take("op", "}")
                inner.name, inner.label, inner.line = name, label, tok.line
                block.blocks.append(inner)
            end = self.peek()
            if end.kind not in ("nl", "eof") and not (until and self.at_op(until)):
                raise AlloySyntaxError(f"line {end.line}: expected a new line, found {end.text!r}")

    # --- expressions ---
    def expr(self) -> Any:
        left = self.unary()
        while self.peek().kind == "op" and self.peek().text in _BINARY:
            op = self.take("op").text
            self.skip_newlines()
            left = ("binary", op, left, self.unary())
        return left

    def unary(self) -> Any:
        if self.peek().kind == "op" and self.peek().text in ("!", "-"):
            op = self.take("op").text
            return ("unary", op, self.unary())
        return self.postfix(self.primary())

    def postfix(self, value: Any) -> Any:
        while True:
            if self.at_op("."):
                self.i += 1
                attr = self.take("ident").text
                value = Ref(f"{value.path}.{attr}") if isinstance(value, Ref) else ("access", value, attr)
            elif self.at_op("["):
                self.i += 1
                index = self.expr()
                self.take("op", "]")
                value = ("index", value, index)
            elif self.at_op("(") and isinstance(value, Ref):
                self.i += 1
                value = Call(value.path, self.items(")"))
            else:
                return value

    def items(self, close: str) -> list[Any]:
        out = []
        while True:
            self.skip_newlines()
            if self.at_op(close):
                self.i += 1
                return out
            out.append(self.expr())
            self.skip_newlines()
            if self.at_op(","):
                self.i += 1
            elif not self.at_op(close):
                tok = self.peek()
                raise AlloySyntaxError(f"line {tok.line}: expected ',' or {close!r}, found {tok.text!r}")

    def primary(self) -> Any:  # noqa: PLR0911 - one return per kind of expression
        tok = self.peek()
        if tok.kind == "string":
            self.i += 1
            try:
                return json.loads(tok.text)
            except ValueError as exc:
                raise AlloySyntaxError(f"line {tok.line}: bad string {tok.text}: {exc}") from exc
        if tok.kind == "raw":
            self.i += 1
            return tok.text[1:-1]
        if tok.kind == "number":
            self.i += 1
            return float(tok.text)
        if tok.kind == "ident":
            self.i += 1
            return {"true": True, "false": False, "null": None}.get(tok.text, Ref(tok.text))
        if self.at_op("("):
            self.i += 1
            inner = self.expr()
            self.take("op", ")")
            return inner
        if self.at_op("["):
            self.i += 1
            return self.items("]")
        if self.at_op("{"):
            self.i += 1
            return self.object()
        raise AlloySyntaxError(f"line {tok.line}: expected an expression, found {tok.text or tok.kind!r}")

    def object(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while True:
            self.skip_newlines()
            if self.at_op("}"):
                self.i += 1
                return out
            string = self.peek().kind == "string"
            key = json.loads(self.take("string").text) if string else self.take("ident").text
            self.take("op", "=")
            out[key] = self.expr()
            self.skip_newlines()
            if self.at_op(","):
                self.i += 1
            elif not self.at_op("}"):
                raise AlloySyntaxError(f"line {self.peek().line}: expected ',' or '}}' in an object")


def parse(text: str) -> list[Block]:
    """The top-level blocks of an Alloy file; raises AlloySyntaxError."""
    root = _Parser(text).body(None)
    if root.attrs:
        raise AlloySyntaxError(f"top-level attributes are not allowed: {sorted(root.attrs)}")
    return root.blocks


def refs(value: Any) -> list[str]:
    """Every reference an expression contains."""
    if isinstance(value, Ref):
        return [value.path]
    if isinstance(value, Call):
        return [r for a in value.args for r in refs(a)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in refs(v)]
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in refs(v)]
    return []
