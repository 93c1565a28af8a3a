"""FerretDB 1.24 with its SQLite backend: a real Mongo-wire database on loopback.

Built from the Go module proxy. ``go install ...@v1.24.2`` compiles, but the module
zip carries an empty ``build/version/version.txt`` and the binary then refuses to start
("Invalid build/version/version.txt file content"). So the runner downloads the module
with ``go mod download``, copies it, writes the version file and builds that copy:
same source, same proxy, a working binary. Built once per version into the cache.

Lookups by ``_id`` need one more index (``index_id_lookups``): FerretDB's own does not
serve its own query.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from ca4_events import names
from local_stack import prereqs
from local_stack.config import FERRETDB_MODULE, FERRETDB_VERSION, StackConfig
from local_stack.procs import Process, StackError, base_env, require_free_port, run_checked, step, wait_until


def binary_path(cfg: StackConfig) -> Path:
    """Cached FerretDB binary of the pinned version."""
    return cfg.cache_dir / f"ferretdb-{FERRETDB_VERSION}" / "ferretdb"


def ensure_binary(cfg: StackConfig) -> Path:
    """Build FerretDB once; later runs reuse the cached binary."""
    binary = binary_path(cfg)
    if binary.exists():
        return binary
    go = prereqs.require("go", "building FerretDB")
    log = cfg.cache_dir / "logs" / "go-ferretdb.log"
    with (
        step(f"building FerretDB {FERRETDB_VERSION} from the Go module proxy (first run only, 1-3 min)"),
        tempfile.TemporaryDirectory(prefix="ca4-ferretdb-") as tmp,
    ):
        env = {**os.environ, "GOFLAGS": "-mod=readonly"}
        out = subprocess.run(
            [go, "mod", "download", "-json", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        if out.returncode != 0:
            raise StackError(
                f"go mod download {FERRETDB_MODULE}@{FERRETDB_VERSION} failed:\n{out.stdout}{out.stderr}"
            )
        module_dir = Path(json.loads(out.stdout)["Dir"])
        src = Path(tmp) / "src"
        shutil.copytree(module_dir, src)
        for path in src.rglob("*"):
            path.chmod(path.stat().st_mode | 0o200)  # module cache files are read-only
        (src / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
        binary.parent.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(".partial")
        run_checked(
            [go, "build", "-trimpath", "-o", str(partial), "./cmd/ferretdb"],
            "go build ferretdb",
            log_file=log,
            env=env,
            cwd=src,
        )
        partial.rename(binary)
    return binary


def process(cfg: StackConfig) -> Process:
    """FerretDB's process handle."""
    return Process("ferretdb", cfg.run_dir, cfg.logs_dir)


def ready(cfg: StackConfig) -> bool:
    """The Mongo-wire endpoint answers ping (FerretDB here, or MongoDB in the docker backend)."""
    client: MongoClient[dict[str, object]] = MongoClient(cfg.mongo_uri, serverSelectionTimeoutMS=1000)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


# FerretDB keeps SQLite in WAL mode; with synchronous=NORMAL a commit waits for no fsync (the
# WAL is synced at checkpoints). A process crash loses nothing (the fault tests kill processes,
# not the machine); an OS crash could lose the last commits, which a local stand-in may. With
# SQLite's default (FULL) every batch the worker writes waited for the VM's disk: an insert of 5
# events and a device update took 10-18 ms at the median and 100-124 ms at p99, against 3-5 and
# 35-40 ms (the end-to-end p99 is made of these waits; DocumentDB's writes do not fsync a local disk)
SQLITE_SYNCHRONOUS = "synchronous(normal)"


def start(cfg: StackConfig) -> None:
    """Start FerretDB on ``cfg.mongo_port`` with data under the state folder."""
    proc = process(cfg)
    if proc.alive():
        print(f"ferretdb already running (pid {proc.pid()}) on {cfg.mongo_uri}", flush=True)
        index_id_lookups(cfg)
        return
    require_free_port(cfg, "mongo_port")
    binary = ensure_binary(cfg)
    data = cfg.data_dir("ferretdb")
    state = cfg.data_dir("ferretdb-state")
    data.mkdir(parents=True, exist_ok=True)
    state.mkdir(parents=True, exist_ok=True)
    argv = [
        str(binary),
        "--handler=sqlite",
        f"--sqlite-url=file:{data}/?_pragma={SQLITE_SYNCHRONOUS}",
        f"--listen-addr=127.0.0.1:{cfg.mongo_port}",
        "--debug-addr=-",
        f"--state-dir={state}",
        "--telemetry=disable",
        "--log-level=warn",
        "--log-format=json",
    ]
    with step(f"starting FerretDB {FERRETDB_VERSION} (SQLite) on {cfg.mongo_uri}"):
        proc.start(argv, base_env())
        wait_until(lambda: ready(cfg), 30, "ferretdb", proc.log_file, proc)
        index_id_lookups(cfg)


# the collections read by _id: events (the tests, the demo, the benchmark), devices (the demo)
ID_LOOKUP_COLLECTIONS = (names.COLLECTION_EVENTS, names.COLLECTION_DEVICES)


def index_id_lookups(cfg: StackConfig) -> None:
    """Make ``find({"_id": x})`` an index search instead of a scan of the whole collection.

    FerretDB 1.24 pushes an equality on ``_id`` down to SQLite as
    ``_ferretdb_sjson->'$._id' = ?`` (internal/backends/sqlite/collection.go), but the unique
    index it creates is on ``_ferretdb_sjson->"_id"``; SQLite cannot match the two expressions
    and scans the table: 1.4 s per lookup at 100 000 documents, 1.5 ms with this index on
    exactly the pushed-down expression. FerretDB's metadata does not list it (it is SQLite's
    alone), SQLite keeps it current and drops it with the table. ``$in`` on ``_id`` is never
    pushed down, indexed or not: look documents up one ``_id`` at a time.
    """
    client: MongoClient[dict[str, object]] = MongoClient(cfg.mongo_uri, serverSelectionTimeoutMS=5000)
    try:
        db = client[names.DATABASE]
        existing = set(db.list_collection_names())
        for name in ID_LOOKUP_COLLECTIONS:
            if name not in existing:
                db.create_collection(name)
    finally:
        client.close()
    path = cfg.data_dir("ferretdb") / f"{names.DATABASE}.sqlite"
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
        tables = dict(conn.execute("SELECT name, table_name FROM _ferretdb_collections").fetchall())
        for name in ID_LOOKUP_COLLECTIONS:
            table = tables[name]  # FerretDB's own name for it, e.g. gpu_metadata_d796492b
            conn.execute(
                f'CREATE INDEX IF NOT EXISTS "{table}__id_lookup" ON "{table}" (_ferretdb_sjson->\'$._id\')'
            )
        conn.commit()


def stop(cfg: StackConfig) -> bool:
    """SIGTERM, SIGKILL after 10 s."""
    return process(cfg).stop(timeout=10)
