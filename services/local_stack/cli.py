"""``ca4-local``: run CA4 on this machine on real services, no cloud account needed."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from local_stack import demo, stack
from local_stack.config import StackConfig
from local_stack.procs import StackError

DESCRIPTION = """\
Run the CA4 pipeline locally on real services: Apache Kafka (KRaft, official jars from
Maven Central), FerretDB (Mongo wire protocol, SQLite backend, built with Go), moto
server as S3, then the Processor API and the Metadata Worker, configured by the same
environment variables as their Kubernetes pods. Everything listens on 127.0.0.1.

State (data, logs, PID files, the generated API token) lives in .ca4-local/ and
downloads are cached in ~/.cache/ca4 (override with CA4_LOCAL_STATE_DIR and
CA4_CACHE_DIR; ports with CA4_LOCAL_KAFKA_PORT, CA4_LOCAL_MONGO_PORT, CA4_LOCAL_S3_PORT,
CA4_LOCAL_API_PORT, CA4_LOCAL_WORKER_PORT, CA4_LOCAL_PROMETHEUS_PORT). Prometheus runs
when Debian's prometheus package (or any prometheus binary on PATH) is installed.

With Docker, CA4_LOCAL_BACKEND=docker runs Kafka (apache/kafka), MongoDB and moto as
containers instead (testcontainers); the API and the worker stay local processes.
"""


def _config(args: argparse.Namespace) -> StackConfig:
    root = Path(os.environ.get("CA4_PROJECT_ROOT", Path.cwd()))
    try:
        cfg = StackConfig.from_env(root)
    except ValueError as exc:
        raise StackError(str(exc)) from exc
    if getattr(args, "no_archive", False):
        cfg = replace(cfg, archive_enabled=False)
    return cfg


def cmd_up(args: argparse.Namespace) -> int:
    """Start the stack."""
    stack.up(_config(args))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    """Stop the stack."""
    stopped = stack.down(_config(args))
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Show what runs; exit 1 when something installed is down or unhealthy."""
    rows = stack.status(_config(args))
    for name, ident, endpoint, state in rows:
        print(f"{name:16} {state:14} id {ident or '-':<12} {endpoint}")
    return 0 if all(state in ("healthy", "not installed") for *_, state in rows) else 1


def cmd_demo(args: argparse.Namespace) -> int:
    """Bring the stack up, send the captures, show what landed."""
    cfg = _config(args)
    stack.up(cfg)
    result = demo.run(cfg, Path(args.captures))
    for line in demo.report(result, cfg.archive_enabled):
        print(line)
    print(
        "\nThe stack is still running: explore it (see 'make local-status'), stop it with 'make local-down'."
    )
    return 0 if result.ok(cfg.archive_enabled) else 1


def cmd_clean(args: argparse.Namespace) -> int:
    """Stop everything and delete local state."""
    cfg = _config(args)
    stack.clean(cfg, cache=args.cache)
    print(f"removed {cfg.state_dir}" + (f" and {cfg.cache_dir}" if args.cache else ""))
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    """Print a service's environment (what its pod gets) as shell exports."""
    cfg = _config(args)
    env = cfg.api_env() if args.service == "api" else cfg.worker_env()
    for key, value in sorted(env.items()):
        print(f"export {key}={value!r}" if " " in value else f"export {key}={value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="ca4-local",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("up", help="start Kafka, FerretDB, S3, the worker and the API (idempotent)")
    p.add_argument("--no-archive", action="store_true", help="run the worker without the S3 archive")
    p.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop everything (data is kept)").set_defaults(func=cmd_down)
    sub.add_parser("status", help="show each component, its PID and health").set_defaults(func=cmd_status)
    p = sub.add_parser("demo", help="up, then send the H200 captures through the API and show what landed")
    p.add_argument(
        "--captures",
        default="tests/fixtures/gpu/h200",
        help="folder with nvml-series.json (default: %(default)s)",
    )
    p.add_argument("--no-archive", action="store_true", help="run the worker without the S3 archive")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("clean", help="down, then delete .ca4-local (data, logs, token)")
    p.add_argument(
        "--cache", action="store_true", help="also delete the download cache (Kafka jars, FerretDB)"
    )
    p.set_defaults(func=cmd_clean)
    p = sub.add_parser("env", help="print the environment a service gets (the manifests' contract)")
    p.add_argument("service", choices=["api", "worker"])
    p.set_defaults(func=cmd_env)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: readable errors, never a stack trace, for expected failures."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except StackError as exc:
        print(f"\nca4-local: {exc}", file=sys.stderr)
        return 1
    except FileNotFoundError as exc:
        print(f"\nca4-local: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nca4-local: interrupted", file=sys.stderr)
        return 130
