"""Where the client finds its URL and token: argument, environment, Colab secrets."""

from __future__ import annotations

import sys
import types

import httpx
import pytest

from ca4_producer import credentials
from ca4_producer.client import Ca4Client, Ca4ClientError


class FakeUserdata(types.ModuleType):
    """``google.colab.userdata``: ``get`` raises when a secret is missing, like Colab's."""

    class SecretNotFoundError(Exception):
        pass

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__("google.colab.userdata")
        self.values = values
        self.asked: list[str] = []

    def get(self, name: str) -> str:
        self.asked.append(name)
        if name not in self.values:
            raise self.SecretNotFoundError(name)
        return self.values[name]


@pytest.fixture
def colab(monkeypatch: pytest.MonkeyPatch) -> FakeUserdata:
    """A Colab runtime whose user stored two secrets."""
    userdata = FakeUserdata({"EDGE_API_URL": "https://ca4.example.org/", "CA4_API_TOKEN": "from-colab"})
    google = types.ModuleType("google")
    colab_pkg = types.ModuleType("google.colab")
    colab_pkg.userdata = userdata  # type: ignore[attr-defined]
    google.colab = colab_pkg  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab_pkg)
    monkeypatch.setitem(sys.modules, "google.colab.userdata", userdata)
    monkeypatch.delenv("EDGE_API_URL", raising=False)
    monkeypatch.delenv("CA4_API_TOKEN", raising=False)
    return userdata


def test_colab_secrets_are_used_when_the_environment_has_nothing(colab: FakeUserdata) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return httpx.Response(202, json={"event_ids": []})

    client = Ca4Client(transport=httpx.MockTransport(handler))
    assert client.base_url == "https://ca4.example.org"
    assert (client.url_origin, client.token_origin) == ("colab secret", "colab secret")
    client._http.post("/metadata", content=b"{}")
    assert seen == ["Bearer from-colab"]


def test_the_environment_wins_over_colab_secrets(
    colab: FakeUserdata, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CA4_API_TOKEN", "from-env")
    client = Ca4Client()
    assert (client.url_origin, client.token_origin) == ("colab secret", "environment")
    assert "CA4_API_TOKEN" not in colab.asked, (
        f"token secret read though the environment has one: {colab.asked}"
    )
    assert colab.asked == ["EDGE_API_URL", "CA4_CA_BUNDLE"], colab.asked


def test_a_missing_colab_secret_is_a_clear_error(colab: FakeUserdata) -> None:
    del colab.values["CA4_API_TOKEN"]
    with pytest.raises(Ca4ClientError, match="Colab secret CA4_API_TOKEN"):
        Ca4Client()


def test_outside_colab_there_are_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.colab.userdata", None)
    assert credentials.colab_secret("CA4_API_TOKEN") is None


def test_resolve_order() -> None:
    secrets = {"X": "secret"}.get
    assert credentials.resolve("X", "arg", env={"X": "env"}, secrets=secrets) == credentials.Setting(
        "arg", "argument"
    )
    assert credentials.resolve("X", None, env={"X": "env"}, secrets=secrets).origin == "environment"
    assert credentials.resolve("X", None, env={}, secrets=secrets).origin == "colab secret"
    assert credentials.resolve("Y", None, env={}, secrets=secrets) == credentials.Setting(None, "missing")
