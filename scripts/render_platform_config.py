#!/usr/bin/env python3
"""Render CA4's deploy-time Kubernetes objects from `terraform output -json`.

Writes, under --out (default rendered/, gitignored; files mode 600, folders 700):

  platform/ca4-mongo-credentials.yaml   Secret: MONGO_URI, MONGO_DATABASE
  platform/ca4-s3-config.yaml           Secret: S3_BUCKET, S3_REGION, S3_PREFIX, ARCHIVE_ENABLED (and
                                        S3_ENDPOINT_URL with --s3-endpoint-url: an S3-compatible store)
  platform/ca4-edge-api-config.yaml     Secret: EDGE_API_URL, API_TOKENS (sha256 digests only),
                                        KAFKA_BOOTSTRAP_SERVERS, KAFKA_TOPIC
  platform/kustomization.yaml           manifests/platform + those Secrets, Kafka sized to --kafka-brokers
  app/kustomization.yaml                manifests/app with the image tag of --image-tag (when given)

The same inputs give byte-identical files: no timestamps, sorted keys, fixed formatting,
so `kubectl apply` of a second rendering changes nothing. Only the standard library is
used, so it runs with the operator's python3 before any project venv exists.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MANIFESTS = REPO / "manifests"

# The names the services and the verification code agree on (ca4_events/names.py; a test
# checks these copies, since this script must run without the project installed).
TOPIC = "gpu-metadata"
APP_NAMESPACE = "app"
KAFKA_NAMESPACE = "platform"
KAFKA_SERVICE = "kafka"
KAFKA_CLIENT_PORT = 9092
IMAGE_NAME = "localhost/ca4-services"
# Where the image keeps the DocumentDB CA bundle: its WORKDIR, so the relative
# tlsCAFile=global-bundle.pem of Terraform's mongo_uri resolves in every container of it.
CA_BUNDLE_NAMES = ("global-bundle.pem", "/app/global-bundle.pem")
HASH_PREFIX = "sha256:"
MIN_TOKEN_LENGTH = 16

HEADER = "# Rendered by scripts/render_platform_config.py from Terraform outputs; never commit, never edit.\n"


class RenderError(Exception):
    """An input is missing or inconsistent; the message names it."""


# --- inputs ---------------------------------------------------------------------------------


def load_outputs(source: str) -> dict[str, Any]:
    """`terraform output -json` from a file or stdin, as {name: value}."""
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RenderError(f"the Terraform outputs are not JSON: {exc}") from exc
    if not isinstance(raw, dict) or not raw:
        raise RenderError("Terraform has no outputs yet: run make ca4-apply first")
    return {name: (entry.get("value") if isinstance(entry, dict) else None) for name, entry in raw.items()}


def need(outputs: dict[str, Any], name: str, *, allow_empty: bool = False) -> Any:
    """One output; missing or null (or empty, unless allowed) is an error naming it."""
    value = outputs.get(name)
    if value is None or (value in ("", [], {}) and not allow_empty):
        raise RenderError(
            f"Terraform output {name!r} is missing or empty (is ca4/terraform applied and current?)"
        )
    return value


def read_tokens(path: Path) -> list[str]:
    """API tokens, one per line ('#' comments); plain tokens become sha256 digests."""
    if not path.is_file():
        raise RenderError(f"no API token file at {path} (make ca4-platform-setup creates one)")
    digests: list[str] = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        token = line.strip()
        if not token or token.startswith("#"):
            continue
        if token.startswith(HASH_PREFIX):
            hexpart = token.removeprefix(HASH_PREFIX).lower()
            if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
                raise RenderError(f"{path}:{n}: 'sha256:' must be followed by 64 hex digits")
            digest = HASH_PREFIX + hexpart
        else:
            if len(token) < MIN_TOKEN_LENGTH or "," in token:
                raise RenderError(f"{path}:{n}: a token needs {MIN_TOKEN_LENGTH}+ characters and no comma")
            digest = HASH_PREFIX + hashlib.sha256(token.encode()).hexdigest()
        if digest not in digests:
            digests.append(digest)
    if not digests:
        raise RenderError(f"{path} holds no token")
    return digests


def check_mongo_uri(uri: str) -> None:
    """DocumentDB refuses connections without these; catch a changed output before the worker does."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("mongodb", "mongodb+srv"):
        raise RenderError("Terraform output 'mongo_uri' is not a mongodb:// URI")
    query = dict(urllib.parse.parse_qsl(parts.query))
    problems = [f"{k}={v}" for k, v in (("tls", "true"), ("retryWrites", "false")) if query.get(k) != v]
    if problems:
        raise RenderError(f"Terraform output 'mongo_uri' lacks {', '.join(problems)} (DocumentDB needs them)")
    ca = query.get("tlsCAFile")
    if ca not in CA_BUNDLE_NAMES:
        raise RenderError(
            f"Terraform output 'mongo_uri' has tlsCAFile={ca!r}; the CA4 image holds the bundle as "
            f"{' or '.join(CA_BUNDLE_NAMES)}"
        )


def kafka_bootstrap(brokers: int) -> str:
    """Every broker's stable DNS name (the headless Service), so any one of them bootstraps."""
    domain = f"{KAFKA_SERVICE}.{KAFKA_NAMESPACE}.svc.cluster.local"
    return ",".join(f"kafka-{i}.{domain}:{KAFKA_CLIENT_PORT}" for i in range(brokers))


# --- objects -----------------------------------------------------------------------------------


def secret(name: str, component: str, data: dict[str, str]) -> str:
    """A Secret as YAML; values base64 so any byte survives and the text is stable."""
    lines = [
        HEADER.rstrip("\n"),
        "apiVersion: v1",
        "kind: Secret",
        "metadata:",
        f"  name: {name}",
        f"  namespace: {APP_NAMESPACE}",
        "  labels:",
        f"    app.kubernetes.io/name: {name}",
        f"    app.kubernetes.io/component: {component}",
        "    app.kubernetes.io/part-of: ca4",
        "type: Opaque",
        "data:",
    ]
    for key in sorted(data):
        encoded = base64.b64encode(data[key].encode()).decode()
        lines.append(f"  {key}: {json.dumps(encoded)}")
    return "\n".join(lines) + "\n"


def check_endpoint(url: str) -> str:
    """An S3 endpoint other than AWS's own: https only (the archive carries every event)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise RenderError(f"--s3-endpoint-url {url!r} is not an https://host[:port] URL")
    return url.rstrip("/")


def secrets(
    outputs: dict[str, Any], tokens: list[str], brokers: int, s3_endpoint: str | None = None
) -> dict[str, str]:
    """The three Secrets of DESIGN.md's configuration contract, by file name."""
    mongo_uri = str(need(outputs, "mongo_uri"))
    check_mongo_uri(mongo_uri)
    s3 = {
        "S3_BUCKET": str(need(outputs, "s3_bucket_name")),
        "S3_REGION": str(need(outputs, "aws_region")),
        "S3_PREFIX": str(need(outputs, "s3_prefix", allow_empty=True)),
        "ARCHIVE_ENABLED": "true",  # Terraform always creates the archive bucket
    }
    if s3_endpoint is not None:
        s3["S3_ENDPOINT_URL"] = check_endpoint(s3_endpoint)
    database = str(need(outputs, "documentdb_database"))
    edge = {
        "EDGE_API_URL": str(need(outputs, "edge_api_url")),
        "API_TOKENS": ",".join(tokens),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap(brokers),
        "KAFKA_TOPIC": TOPIC,
    }
    return {
        "ca4-mongo-credentials.yaml": secret(
            "ca4-mongo-credentials",
            "database-credentials",
            {"MONGO_URI": mongo_uri, "MONGO_DATABASE": database},
        ),
        "ca4-s3-config.yaml": secret("ca4-s3-config", "archive-config", s3),
        "ca4-edge-api-config.yaml": secret("ca4-edge-api-config", "edge-config", edge),
    }


def platform_kustomization(base: str, secret_files: list[str], brokers: int) -> str:
    """manifests/platform plus the Secrets, with Kafka's size set in its two places from one number."""
    resources = "".join(f"  - {r}\n" for r in [base, *secret_files])
    return (
        HEADER
        + "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        + "kind: Kustomization\n"
        + "resources:\n"
        + resources
        + "replicas:\n"
        + "  - name: kafka\n"
        + f"    count: {brokers}\n"
        + "patches:\n"
        + "  - target:\n"
        + "      kind: ConfigMap\n"
        + "      name: kafka-cluster\n"
        + f"      namespace: {KAFKA_NAMESPACE}\n"
        + "    patch: |-\n"
        + "      - op: replace\n"
        + "        path: /data/brokers\n"
        + f'        value: "{brokers}"\n'
    )


def app_kustomization(base: str, tag: str) -> str:
    """manifests/app with the CA4 image pinned to this checkout's tag."""
    return (
        HEADER
        + "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        + "kind: Kustomization\n"
        + "resources:\n"
        + f"  - {base}\n"
        + "images:\n"
        + f"  - name: {IMAGE_NAME}\n"
        + f"    newTag: {tag}\n"
    )


# --- output ------------------------------------------------------------------------------------


def check_out_dir(out: Path) -> None:
    """Inside the repository only where git ignores it (rendered Secrets never enter git)."""
    try:
        out.resolve().relative_to(REPO)
    except ValueError:
        return
    probe = out.resolve() / "platform" / "ca4-mongo-credentials.yaml"
    try:
        ignored = subprocess.run(
            ["git", "-C", str(REPO), "check-ignore", "-q", str(probe)], check=False, timeout=10
        ).returncode
    except (OSError, subprocess.TimeoutExpired):
        return  # no git: nothing can be committed by accident either
    if ignored == 1:
        raise RenderError(
            f"{out} is inside the repository and not gitignored: rendered Secrets must never enter git"
        )


def write(path: Path, text: str) -> None:
    """Mode 600 from the first byte; folders 700."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    path.chmod(0o600)


def render(  # noqa: PLR0917 - one argument per input, as the command line has them
    outputs: dict[str, Any],
    tokens: list[str],
    brokers: int,
    out: Path,
    image_tag: str | None,
    s3_endpoint: str | None = None,
) -> list[Path]:
    """Check every input, then write every file; return their paths."""
    if brokers not in (1, 2, 3):
        raise RenderError(f"Kafka runs 1 to 3 brokers, asked for {brokers}")
    if image_tag is not None and (
        not image_tag or any(c not in "abcdefghijklmnopqrstuvwxyz0123456789._-" for c in image_tag.lower())
    ):
        raise RenderError(f"image tag {image_tag!r} is not a valid tag")
    check_out_dir(out)
    files = secrets(outputs, tokens, brokers, s3_endpoint)
    written = []
    for name, text in files.items():
        written.append(out / "platform" / name)
        write(written[-1], text)
    platform_base = os.path.relpath(MANIFESTS / "platform", (out / "platform").resolve())
    written.append(out / "platform" / "kustomization.yaml")
    write(written[-1], platform_kustomization(platform_base, sorted(files), brokers))
    if image_tag is not None:
        app_base = os.path.relpath(MANIFESTS / "app", (out / "app").resolve())
        written.append(out / "app" / "kustomization.yaml")
        write(written[-1], app_kustomization(app_base, image_tag))
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: see --help."""
    parser = argparse.ArgumentParser(
        prog="render_platform_config.py",
        description="Render CA4's Secrets and overlays from `terraform output -json`, deterministically.",
    )
    parser.add_argument("--outputs", required=True, help="`terraform output -json` file, or - for stdin")
    parser.add_argument(
        "--api-tokens-file", required=True, type=Path, help="API tokens, one per line (mode 600)"
    )
    parser.add_argument("--kafka-brokers", required=True, type=int, help="Kafka brokers, 1 to 3")
    parser.add_argument(
        "--image-tag", help="tag of localhost/ca4-services to deploy (writes app/kustomization.yaml)"
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "rendered", help="output folder (default rendered/)"
    )
    parser.add_argument(
        "--s3-endpoint-url",
        help="an S3-compatible endpoint for the archive instead of AWS's (https://host[:port]); "
        "the worker's S3_ENDPOINT_URL",
    )
    args = parser.parse_args(argv)
    try:
        outputs = load_outputs(args.outputs)
        tokens = read_tokens(args.api_tokens_file)
        written = render(outputs, tokens, args.kafka_brokers, args.out, args.image_tag, args.s3_endpoint_url)
    except (RenderError, OSError) as exc:
        print(f"render_platform_config: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"   rendered {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
