"""What the Processor API and the Metadata Worker share as services: the settings common
to both (Kafka's address and topic, the log level), reading them with an error that names
the variable instead of a stack trace, and the ``--help`` line listing the variables."""

from __future__ import annotations

import argparse
import sys
from typing import TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ca4_events import names


class ServiceSettings(BaseSettings):
    """Environment variables only (the Kubernetes manifests set exactly these); a field's
    name, upper-cased, is its variable."""

    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers."
    )
    kafka_topic: str = Field(default=names.TOPIC, description="The events topic.")
    log_level: str = Field(default="INFO")

    def bootstrap_list(self) -> list[str]:
        """``kafka_bootstrap_servers`` as a list."""
        return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]


S = TypeVar("S", bound=ServiceSettings)


def load(settings: type[S], prog: str) -> S | None:
    """The settings from the environment, or None after printing one line per bad variable."""
    try:
        return settings()
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            name = "_".join(str(p) for p in err["loc"]).upper() or "settings"
            print(f"{prog}: configuration error in {name}: {err['msg']}", file=sys.stderr)
        return None


def from_command_line(settings: type[S], prog: str, what: str, argv: list[str] | None) -> S | None:
    """``--help`` (what the service does, every variable it reads, which are required), then
    the settings from the environment; None after a configuration error was printed."""
    required = [name.upper() for name, f in settings.model_fields.items() if f.is_required()]
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            f"{what} Configured only by environment variables: "
            + ", ".join(name.upper() for name in settings.model_fields)
            + f" ({', '.join(required)} required; see the README's configuration contract)."
        ),
    )
    parser.parse_args(argv)
    return load(settings, prog)
