"""Steps of security.feature."""

from __future__ import annotations

import copy
import re
import socket
import urllib.parse
from typing import Any

import httpx
from pytest_bdd import parsers, then, when

from tests.bdd.targets.base import Target


@when("the client posts the snapshot without a token", target_fixture="posted")
def post_without_token(target: Target, snapshot: dict[str, Any]) -> httpx.Response:
    """No Authorization header at all."""
    target.require("api")
    return target.post_metadata(snapshot, token="")


@when(parsers.parse('the client posts the snapshot with the token "{token}"'), target_fixture="posted")
def post_with_token(target: Target, snapshot: dict[str, Any], token: str) -> httpx.Response:
    """A token the API does not know."""
    target.require("api")
    return target.post_metadata(snapshot, token=token)


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    parts = [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]
    node: Any = out
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value
    return out


@when(parsers.parse('the client posts the snapshot with "{path}" set to {value:d}'), target_fixture="posted")
def post_invalid(target: Target, snapshot: dict[str, Any], path: str, value: int) -> httpx.Response:
    """A snapshot with one field out of range."""
    target.require("api", "token")
    return target.post_metadata(_set(snapshot, path, value))


@then(parsers.parse("the API answers {status:d}"))
def answers(posted: httpx.Response, status: int) -> None:
    """The status code."""
    assert posted.status_code == status, f"expected {status}, got {posted.status_code}: {posted.text[:300]}"


@then(parsers.parse('the error names the field "{field}"'))
def names_the_field(posted: httpx.Response, field: str) -> None:
    """The 422 body lists the field by its JSON path."""
    fields = [e["field"] for e in posted.json().get("errors", [])]
    assert field in fields, f"expected an error for {field}, got {fields}"


@when("I read the API's OpenAPI document", target_fixture="openapi")
def read_openapi(target: Target) -> dict[str, Any]:
    """GET /openapi.json."""
    target.require("api")
    resp = target.api_get("/openapi.json")
    assert resp.status_code == 200, f"/openapi.json answered {resp.status_code}"
    return dict(resp.json())


@then(parsers.parse('its paths are exactly "{paths}"'))
def exactly_these_paths(openapi: dict[str, Any], paths: str) -> None:
    """Nothing else is routed."""
    expected = {p.strip() for p in paths.split(",")}
    assert set(openapi["paths"]) == expected, f"expected {sorted(expected)}, found {sorted(openapi['paths'])}"


@when("I read the Processor API's environment", target_fixture="api_env")
def read_api_env(target: Target) -> dict[str, str]:
    """Variables the API process (or its Deployment) has."""
    target.require("api-environment")
    return target.api_environment()


@then(parsers.parse('it has no variable "{name}"'))
def no_variable(api_env: dict[str, str], name: str) -> None:
    """The variable is absent."""
    assert name not in api_env, f"the Processor API has {name}; it must never reach the database"


@when(parsers.parse("I connect to the API's public host on port {port:d}"), target_fixture="connection")
def connect_public(target: Target, port: int) -> tuple[str, int, str | None]:
    """A plain TCP connect with a short timeout."""
    target.require("public-address")
    host = urllib.parse.urlsplit(target.api_url).hostname or ""
    try:
        with socket.create_connection((host, port), timeout=3):
            return host, port, None
    except OSError as exc:
        return host, port, type(exc).__name__


@then("the connection is refused or times out")
def refused(connection: tuple[str, int, str | None]) -> None:
    """Nothing listens there for the public."""
    host, port, error = connection
    assert error is not None, f"{host}:{port} accepted a connection from outside the VPC"
