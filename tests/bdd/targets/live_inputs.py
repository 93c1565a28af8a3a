"""What the live target needs, found where the lifecycle left it; the environment overrides.

A user who ran the contract's targets in order sets nothing by hand:

- kubeconfig: ``CA4_KUBECONFIG``, else ``$CA4_SECRETS_DIR/ca4-kubeconfig`` (``make ca4-bootstrap-k3s``);
- API URL: ``EDGE_API_URL``, else the Terraform output ``edge_api_url``;
- API token: ``CA4_API_TOKEN``, else the first plain token of ``$CA4_SECRETS_DIR/ca4-api-tokens``
  (``make ca4-platform-setup`` writes it);
- API CA: ``CA4_CA_BUNDLE``, else ``$CA4_API_CA_FILE`` (default ``$CA4_SECRETS_DIR/ca4-api-ca.pem``,
  written by ``make ca4-platform-setup`` when the stack signs its own certificate);
- archive bucket and prefix: ``CA4_S3_BUCKET``, ``CA4_S3_PREFIX``, else the outputs ``s3_bucket_name``,
  ``s3_prefix``; region: ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else the output ``aws_region``;
- brokers: ``CA4_KAFKA_BROKERS``, else min(3, output ``edge_node_private_ips``), as the scripts size Kafka.

The Terraform outputs are read as the scripts read them (``scripts/lib/ca4_common.sh``):
``CA4_TF_OUTPUTS`` (a saved ``terraform output -json``), else ``terraform -chdir=$CA4_TF_DIR
output -json``. ``KUBECONFIG`` is deliberately ignored: a personal one must never point the
verification at another cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.tools.run import run

REPO = Path(__file__).resolve().parents[3]
TF_OUTPUT_TIMEOUT_S = 30


@dataclass(frozen=True)
class LiveInputs:
    """Resolved inputs; ``problems`` says, per input, why it is missing and how to get it."""

    kubeconfig: Path
    api_url: str = ""
    token: str = ""
    ca_bundle: str = ""
    bucket: str = ""
    prefix: str = ""
    region: str = ""
    brokers: int = 3
    have_outputs: bool = False  # the Terraform outputs could be read (a stack exists)
    origins: dict[str, str] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    value = env.get(name, "")
    path = Path(value) if value else default
    return path if path.is_absolute() else REPO / path


def terraform_outputs(env: Mapping[str, str]) -> tuple[dict[str, Any], str]:  # noqa: PLR0911
    """``(outputs, problem)``: name -> value, or {} and why there are none."""
    saved = env.get("CA4_TF_OUTPUTS", "")
    if saved:
        try:
            text = Path(saved).read_text()
        except OSError as exc:
            return {}, f"CA4_TF_OUTPUTS={saved} cannot be read ({exc.strerror})"
        where = f"CA4_TF_OUTPUTS={saved}"
    else:
        tf_dir = _path(env, "CA4_TF_DIR", Path("ca4/terraform"))
        tf = env.get("TF") or shutil.which("terraform") or shutil.which("tofu")
        if not tf:
            return {}, "neither terraform nor tofu is on PATH to read the outputs (or set CA4_TF_OUTPUTS)"
        try:
            done = run([tf, f"-chdir={tf_dir}", "output", "-json"], timeout=TF_OUTPUT_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {}, f"'{tf} -chdir={tf_dir} output -json' did not answer ({exc})"
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["no message"])[-1]
            return {}, f"'{Path(tf).name} -chdir={tf_dir} output -json' failed: {first}"
        text = done.stdout
        where = f"terraform output of {tf_dir}"
    try:
        raw = json.loads(text or "{}")
    except ValueError as exc:
        return {}, f"{where} is not JSON ({exc})"
    outputs = {k: v.get("value") for k, v in raw.items() if isinstance(v, dict)}
    if not outputs:
        return {}, f"{where} has no outputs yet (run make ca4-plan ca4-apply)"
    return outputs, ""


def first_token(path: Path) -> str:
    """The first plain token of a tokens file (comments, blanks and ``sha256:`` digests skipped)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return ""
    for raw in lines:
        line = raw.strip()
        if line and not line.startswith(("#", "sha256:")):
            return line
    return ""


def resolve(env: Mapping[str, str] | None = None) -> LiveInputs:
    """Every input of the live target, with where it came from or why it is missing."""
    env = dict(os.environ if env is None else env)
    secrets = _path(env, "CA4_SECRETS_DIR", Path("kubeconfigs"))
    origins: dict[str, str] = {}
    problems: dict[str, str] = {}
    outputs: dict[str, Any] | None = None
    outputs_problem = ""

    def output(name: str) -> Any:
        nonlocal outputs, outputs_problem
        if outputs is None:
            outputs, outputs_problem = terraform_outputs(env)
        return outputs.get(name)

    def pick(key: str, var: str, out: str) -> str:
        if env.get(var):
            origins[key] = f"environment {var}"
            return env[var]
        value = output(out)
        if value not in (None, ""):
            origins[key] = f"Terraform output {out}"
            return str(value)
        why = outputs_problem or f"Terraform output {out} is empty (run make ca4-apply)"
        problems[key] = f"{var} is not set and {why}; or set {var}"
        return ""

    kubeconfig = _path(env, "CA4_KUBECONFIG", secrets / "ca4-kubeconfig")
    origins["kubeconfig"] = "environment CA4_KUBECONFIG" if env.get("CA4_KUBECONFIG") else "default"
    api_url = pick("api", "EDGE_API_URL", "edge_api_url")
    bucket = pick("s3", "CA4_S3_BUCKET", "s3_bucket_name")
    prefix = env.get("CA4_S3_PREFIX") or str(output("s3_prefix") or "")
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or str(output("aws_region") or "")

    token = env.get("CA4_API_TOKEN", "")
    tokens_file = _path(env, "CA4_API_TOKENS_FILE", secrets / "ca4-api-tokens")
    if token:
        origins["token"] = "environment CA4_API_TOKEN"
    elif token := first_token(tokens_file):
        origins["token"] = f"file {tokens_file}"
    else:
        problems["token"] = (
            f"CA4_API_TOKEN is not set and {tokens_file} holds no plain token: "
            "run make ca4-platform-setup (it writes one), or set CA4_API_TOKEN"
        )

    ca_bundle = env.get("CA4_CA_BUNDLE", "")
    ca_file = _path(env, "CA4_API_CA_FILE", secrets / "ca4-api-ca.pem")
    if ca_bundle:
        origins["ca"] = "environment CA4_CA_BUNDLE"
    elif ca_file.is_file():
        ca_bundle, origins["ca"] = str(ca_file), f"file {ca_file}"
    else:
        origins["ca"] = "public roots only"

    if env.get("CA4_KAFKA_BROKERS"):
        brokers = int(env["CA4_KAFKA_BROKERS"])
    else:
        nodes = output("edge_node_private_ips") or []
        brokers = min(3, len(nodes)) if nodes else 3
    return LiveInputs(
        kubeconfig=kubeconfig,
        api_url=api_url.rstrip("/"),
        token=token,
        ca_bundle=ca_bundle,
        bucket=bucket,
        prefix=prefix,
        region=region,
        brokers=brokers,
        have_outputs=bool(outputs),
        origins=origins,
        problems=problems,
    )
