"""moto server as the S3 endpoint (LocalStack's port, 4566 by default), with the archive bucket."""

from __future__ import annotations

import os

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from local_stack.config import BUCKET, REGION, StackConfig
from local_stack.procs import Process, StackError, http_ok, python, require_free_port, step, wait_until


def process(cfg: StackConfig) -> Process:
    """moto's process handle."""
    return Process("s3", cfg.run_dir, cfg.logs_dir)


def client(cfg: StackConfig):  # type: ignore[no-untyped-def]  # boto3 clients are dynamically typed
    """A boto3 S3 client for the local endpoint."""
    env = cfg.aws_env()
    return boto3.client(
        "s3",
        endpoint_url=cfg.s3_endpoint,
        region_name=REGION,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def start(cfg: StackConfig) -> None:
    """Start moto on ``cfg.s3_port`` and create the archive bucket (idempotent)."""
    proc = process(cfg)
    if proc.alive():
        print(f"s3 (moto) already running (pid {proc.pid()}) on {cfg.s3_endpoint}", flush=True)
    else:
        require_free_port(cfg.s3_port, "CA4_LOCAL_S3_PORT")
        with step(f"starting S3 endpoint (moto server) on {cfg.s3_endpoint}"):
            proc.start(
                [python(), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(cfg.s3_port)],
                {**os.environ, **cfg.aws_env()},
            )
            wait_until(
                lambda: http_ok(f"{cfg.s3_endpoint}/moto-api/"),
                30,
                "moto server",
                proc.log_file,
                proc,
            )
    ensure_bucket(cfg)


def ensure_bucket(cfg: StackConfig) -> None:
    """Create the archive bucket if it is missing (moto keeps data in memory only)."""
    s3 = client(cfg)
    try:
        s3.head_bucket(Bucket=BUCKET)
    except ClientError:
        try:
            s3.create_bucket(Bucket=BUCKET)
        except (BotoCoreError, ClientError) as exc:
            raise StackError(f"could not create bucket {BUCKET}: {exc}") from exc


def stop(cfg: StackConfig) -> bool:
    """Stop moto (its data is gone with it)."""
    return process(cfg).stop(timeout=10)
