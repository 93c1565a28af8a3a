"""Where the producer finds the API URL and token: an argument, the environment, or Colab secrets.

Colab keeps secrets per user (the key icon in the left bar) and hands them to a notebook
that was granted access through ``google.colab.userdata.get``. Outside Colab that module
does not exist and only the environment counts. The token's value is never logged or
printed; only where it came from.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

TOKEN_ENV = "CA4_API_TOKEN"  # noqa: S105 - the variable's name, not a secret
URL_ENV = "EDGE_API_URL"

SecretReader = Callable[[str], str | None]


def colab_secret(name: str) -> str | None:
    """``google.colab.userdata.get(name)``, or ``None`` outside Colab, when unset or not granted."""
    try:
        userdata = importlib.import_module("google.colab.userdata")
    except ImportError:
        return None
    try:
        value = userdata.get(name)
    except Exception as exc:  # SecretNotFoundError, NotebookAccessError, a timed-out consent dialog
        log.info("Colab secret %s not available: %s", name, type(exc).__name__)
        return None
    if value is None:
        return None
    return str(value).strip() or None


@dataclass(frozen=True)
class Setting:
    """A resolved value and where it came from (``argument``, ``environment``, ``colab secret``)."""

    value: str | None
    origin: str


def resolve(
    name: str,
    explicit: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    secrets: SecretReader = colab_secret,
) -> Setting:
    """The first of: ``explicit``, environment variable ``name``, Colab secret ``name``."""
    if explicit:
        return Setting(explicit, "argument")
    env = os.environ if env is None else env
    if env.get(name):
        return Setting(env[name], "environment")
    secret = secrets(name)
    if secret:
        return Setting(secret, "colab secret")
    return Setting(None, "missing")
