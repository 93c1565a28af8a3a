"""moto server as the S3 endpoint (LocalStack's port, 4566 by default), with the archive bucket."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
from collections.abc import Callable
from typing import Any

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


def ready(cfg: StackConfig) -> bool:
    """moto answers on its management path."""
    return http_ok(f"{cfg.s3_endpoint}/moto-api/")


def start(cfg: StackConfig) -> None:
    """Start moto on ``cfg.s3_port`` and create the archive bucket (idempotent)."""
    proc = process(cfg)
    if proc.alive():
        print(f"s3 (moto) already running (pid {proc.pid()}) on {cfg.s3_endpoint}", flush=True)
    else:
        require_free_port(cfg, "s3_port")
        with step(f"starting S3 endpoint (moto server) on {cfg.s3_endpoint}"):
            proc.start(
                [python(), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(cfg.s3_port)],
                {**os.environ, **cfg.aws_env()},
            )
            wait_until(lambda: ready(cfg), 30, "moto server", proc.log_file, proc)
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


def archived_ids(
    client: Any,
    seen: dict[str, set[str]],
    keep: Callable[[dict[str, Any]], bool] = lambda doc: True,
    since: dt.datetime | None = None,
    prefix: str = "enriched/",
) -> dict[str, set[str]]:
    """``{key: ids of the kept documents it holds}`` for the archive objects listed now.

    Call it again and again with the same ``seen``: it caches each object's kept ids, so an
    object is downloaded once (a key names one partition's offset range, so what it holds
    never changes), and it forgets the keys no longer listed (an object superseded by a
    wider range is deleted). Objects last modified before ``since`` are left out, and so
    is one deleted between the listing and the read. Keys holding no kept document are
    left out of the answer.
    """
    listed: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = str(obj["Key"])
            if since is not None and obj["LastModified"] < since:
                continue
            if key not in seen:
                try:
                    body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                        continue  # superseded and deleted since the listing
                    raise
                docs = (json.loads(line) for line in gzip.decompress(body).splitlines() if line)
                seen[key] = {str(doc["_id"]) for doc in docs if keep(doc)}
            listed.add(key)
    for gone in set(seen) - listed:
        del seen[gone]
    return {key: ids for key, ids in seen.items() if ids}
