"""Local-stack runner pieces that need no running service."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from local_stack import cli, docker_backend, kafka, prereqs, prometheus, stack
from local_stack.config import StackConfig, kafka_version
from local_stack.procs import StackError, require_free_port


@pytest.fixture
def cfg(tmp_path: Path) -> StackConfig:
    return StackConfig(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")


def test_the_pinned_kafka_version_comes_from_the_pom() -> None:
    assert kafka_version() == "4.1.1"


def test_broker_config_is_single_node_kraft_on_loopback(cfg: StackConfig) -> None:
    props = dict(line.split("=", 1) for line in kafka.server_properties(cfg).splitlines() if line)
    assert props["process.roles"] == "broker,controller"
    assert (
        props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093,WORKER://127.0.0.1:9094"
    )
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092,WORKER://127.0.0.1:9094"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["auto.create.topics.enable"] == "false", "topics are created on purpose only"


def test_three_nodes_replicate_every_topic_three_times_with_two_in_sync(cfg: StackConfig) -> None:
    three = replace(cfg, kafka_nodes=3)
    nodes = [
        dict(line.split("=", 1) for line in kafka.server_properties(three, n).splitlines() if line)
        for n in (1, 2, 3)
    ]
    voters = "1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293"
    assert [p["node.id"] for p in nodes] == ["1", "2", "3"]
    assert all(p["controller.quorum.voters"] == voters for p in nodes), [
        p["controller.quorum.voters"] for p in nodes
    ]
    assert (
        nodes[2]["listeners"]
        == "PLAINTEXT://127.0.0.1:9292,CONTROLLER://127.0.0.1:9293,WORKER://127.0.0.1:9294"
    )
    assert len({p["log.dirs"] for p in nodes}) == 3, "each node keeps its own data folder"
    for p in nodes:
        got = (
            p["default.replication.factor"],
            p["offsets.topic.replication.factor"],
            p["min.insync.replicas"],
        )
        assert got == ("3", "3", "2"), (
            f"node {p['node.id']}: replication, offsets replication, min ISR = {got}"
        )
    assert three.kafka_bootstrap == "127.0.0.1:9092,127.0.0.1:9192,127.0.0.1:9292"


@pytest.mark.parametrize(
    ("raw", "message"), [("2", "must be 1 or 3, not 2"), ("three", "must be 1 or 3, not 'three'")]
)
def test_a_kafka_node_count_other_than_1_or_3_is_refused_by_name(
    raw: str, message: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CA4_LOCAL_KAFKA_NODES", raw)
    with pytest.raises(ValueError, match=f"CA4_LOCAL_KAFKA_NODES {message}"):
        StackConfig.from_env(tmp_path)


def test_three_kafka_nodes_need_the_native_backend(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="CA4_LOCAL_KAFKA_NODES=3 needs the native backend"):
        StackConfig(state_dir=tmp_path, cache_dir=tmp_path, backend="docker", kafka_nodes=3)


def test_the_api_token_is_generated_once_with_mode_600(cfg: StackConfig) -> None:
    token = cfg.api_token()
    assert len(token) >= 32 and cfg.api_token() == token
    assert stat.S_IMODE(cfg.token_file.stat().st_mode) == 0o600


def test_services_get_the_contract_variables(cfg: StackConfig) -> None:
    api, worker = cfg.api_env(), cfg.worker_env()
    assert set(api) == {
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_TOPIC",
        "API_TOKENS",
        "API_HOST",
        "API_PORT",
        "LOG_LEVEL",
    }
    assert worker["MONGO_URI"] == "mongodb://127.0.0.1:27017/" and worker["ARCHIVE_ENABLED"] == "true"
    assert worker["KAFKA_GROUP_ID"] == "ca4-metadata-worker"
    assert (api["KAFKA_BOOTSTRAP_SERVERS"], worker["KAFKA_BOOTSTRAP_SERVERS"]) == (
        "127.0.0.1:9092",
        "127.0.0.1:9094",
    ), "the worker reaches Kafka on its own listener, the API on the clients' one"


def test_ports_can_be_overridden_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CA4_LOCAL_KAFKA_PORT", "29092")
    monkeypatch.setenv("CA4_LOCAL_STATE_DIR", str(tmp_path / "s"))
    cfg = StackConfig.from_env(tmp_path)
    assert cfg.kafka_bootstrap == "127.0.0.1:29092" and cfg.state_dir == tmp_path / "s"


def test_a_missing_tool_is_named_with_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(StackError) as exc:
        prereqs.require("mvn", "fetching Kafka's jars")
    message = str(exc.value)
    assert "'mvn' was not found on PATH" in message and "apt-get install -y maven" in message


def test_an_old_java_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StackError, match="Java 11; Kafka 4 needs Java 17"):
        prereqs.require_java("the Kafka broker")


def test_status_of_a_stack_that_is_not_running(cfg: StackConfig) -> None:
    rows = stack.status(cfg)
    assert [r[0] for r in rows] == [
        "s3",
        "ferretdb",
        "kafka",
        "metadata-worker",
        "processor-api",
        "prometheus",
    ]
    assert all(ident is None and state in ("stopped", "not installed") for _, ident, _, state in rows)
    assert stack.down(cfg) == [], "down on a stopped stack is a no-op"


def test_a_stale_pid_file_is_not_a_running_process(cfg: StackConfig) -> None:
    proc = kafka.process(cfg)
    proc.run_dir.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    proc.pid_file.write_text(f"{dead.pid}\n")
    assert proc.pid() is None


def test_prometheus_is_optional_for_status(cfg: StackConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prometheus, "binary", lambda: None)
    assert dict((r[0], r[3]) for r in stack.status(cfg))["prometheus"] == "not installed"


def test_prometheus_scrapes_the_services_under_the_cluster_job_names(cfg: StackConfig) -> None:
    text = prometheus.config_text(cfg)
    assert "job_name: processor-api" in text and '"127.0.0.1:8080"' in text
    assert "job_name: metadata-worker" in text and '"127.0.0.1:8081"' in text


def test_cli_help_explains_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ("up", "down", "status", "demo", "clean", "CA4_CACHE_DIR"):
        assert word in out


def test_cli_env_prints_the_worker_contract(
    cfg: StackConfig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CA4_LOCAL_STATE_DIR", str(cfg.state_dir))
    assert cli.main(["env", "worker"]) == 0
    out = capsys.readouterr().out
    assert (
        "export MONGO_URI=mongodb://127.0.0.1:27017/" in out
        and "export KAFKA_DLQ_TOPIC=gpu-metadata.dlq" in out
    )


def test_cli_turns_a_stack_error_into_one_readable_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(cfg: StackConfig) -> None:
        raise StackError("'go' was not found on PATH")

    monkeypatch.setattr(stack, "up", boom)
    monkeypatch.setenv("CA4_LOCAL_STATE_DIR", os.devnull + "-unused")
    assert cli.main(["up"]) == 1
    assert "ca4-local: 'go' was not found on PATH" in capsys.readouterr().err


def test_the_docker_backend_is_refused_clearly_without_a_daemon(
    cfg: StackConfig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(docker_backend, "docker_problem", lambda: "no Docker daemon answers (test)")
    for command in (stack.up, stack.status, stack.down):
        with pytest.raises(StackError, match="CA4_LOCAL_BACKEND=docker, but no Docker daemon answers"):
            command(replace(cfg, backend="docker"))
    # the CLI turns it into one line for every command, never a traceback
    monkeypatch.setenv("CA4_LOCAL_BACKEND", "docker")
    monkeypatch.setenv("CA4_LOCAL_STATE_DIR", str(cfg.state_dir))
    for command in ("status", "down"):
        assert cli.main([command]) == 1
        assert "ca4-local: CA4_LOCAL_BACKEND=docker, but no Docker daemon answers" in capsys.readouterr().err


def test_a_taken_port_names_the_variable_that_moves_it(cfg: StackConfig) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        taken = replace(cfg, mongo_port=listener.getsockname()[1])
        with pytest.raises(StackError, match=r"port \d+ is taken by another program; .*CA4_LOCAL_MONGO_PORT"):
            require_free_port(taken, "mongo_port")


def test_an_unknown_backend_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CA4_LOCAL_BACKEND", "podman")
    assert cli.main(["status"]) == 1
    assert "CA4_LOCAL_BACKEND must be one of native, docker, not 'podman'" in capsys.readouterr().err


def test_the_kafka_container_is_one_kraft_node_advertised_on_loopback(
    cfg: StackConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = docker_backend.kafka_env(cfg)
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://127.0.0.1:9092"
    assert (
        env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        and env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    )
    assert docker_backend.kafka_image() == "apache/kafka:4.1.1", "same version as the native jars"
    monkeypatch.setattr(docker_backend, "docker_problem", lambda: None)
    names = [c.name for c in stack.components(replace(cfg, backend="docker"))]
    assert names == ["s3", "mongodb", "kafka", "metadata-worker", "processor-api", "prometheus"]
