"""The node-list readers of scripts/lib, without a lab: nodes_ready.py (the wait at the end of
scripts/bootstrap_k3s_ca4.sh) and nodes_lacking_image.py (scripts/deploy_edge_ca4.sh's check
for ErrImageNeverPull), as modules and as the scripts call them (stdin, arguments, exit code)."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.tools.run import run

LIB = Path(__file__).resolve().parents[2] / "scripts" / "lib"
VERSION = "v1.34.3+k3s3"


def load(name: str) -> ModuleType:
    """scripts/lib/NAME.py as a module (scripts/lib is not a package)."""
    spec = importlib.util.spec_from_file_location(name, LIB / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cli(name: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """python3 scripts/lib/NAME.py ARGS < stdin, as the shell scripts run it."""
    return run([sys.executable, str(LIB / f"{name}.py"), *args], timeout=30, input=stdin)


def node(
    name: str, ip: str, *, ready: bool = True, version: str = VERSION, images: Any = ()
) -> dict[str, Any]:
    """A Node as the API lists it, with only the fields the readers look at."""
    return {
        "metadata": {"name": name},
        "status": {
            "addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "nodeInfo": {"kubeletVersion": version},
            "images": [{"names": list(images)}],
        },
    }


def node_list(*nodes: dict[str, Any]) -> str:
    return json.dumps({"kind": "NodeList", "items": list(nodes)})


# --- nodes_ready.py ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ready() -> ModuleType:
    return load("nodes_ready")


def test_every_node_ready_with_the_version_is_all_ready(ready: ModuleType) -> None:
    nodes = ready.read_nodes(io.StringIO(node_list(node("edge-0", "10.0.1.10"), node("edge-1", "10.0.1.11"))))
    lines = ready.report(nodes, VERSION, ["10.0.1.10", "10.0.1.11"])
    assert lines[-1] == "ALL-READY"
    assert lines[0] == f"   {'10.0.1.10':<16} {'edge-0':<28} {VERSION:<16} Ready"
    assert len(lines) == 3


@pytest.mark.parametrize(
    "second",
    [
        node("edge-1", "10.0.1.11", ready=False),
        node("edge-1", "10.0.1.11", version="v1.33.1+k3s1"),
        node("edge-1", "10.0.1.99"),  # registered, but not with the IP expected
    ],
    ids=["not-ready", "other-version", "other-ip"],
)
def test_one_node_short_of_it_is_waiting(ready: ModuleType, second: dict[str, Any]) -> None:
    nodes = [node("edge-0", "10.0.1.10"), second]
    assert ready.report(nodes, VERSION, ["10.0.1.10", "10.0.1.11"])[-1] == "WAITING"


def test_an_unregistered_node_is_named_so(ready: ModuleType) -> None:
    lines = ready.report([], VERSION, ["10.0.1.10"])
    assert lines == [f"   {'10.0.1.10':<16} {'(not registered)':<28} {'-':<16} not ready", "WAITING"]


def test_only_the_internal_ip_identifies_a_node(ready: ModuleType) -> None:
    """A hostname or external address equal to an IP expected does not count."""
    other = node("edge-0", "10.0.1.99")
    other["status"]["addresses"].append({"type": "ExternalIP", "address": "10.0.1.10"})
    assert ready.node_states([other], ["10.0.1.10"]) == {}


@pytest.mark.parametrize("stdin", ["", "not json", "[]", '{"kind": "Status"}', '{"items": {}}'])
def test_an_answer_that_is_no_node_list_is_waiting_not_an_error(stdin: str) -> None:
    """The API not up yet: the caller polls again."""
    proc = cli("nodes_ready", VERSION, "10.0.1.10", stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "WAITING"


def test_the_command_line_reports_each_ip_then_the_verdict() -> None:
    stdin = node_list(node("edge-0", "10.0.1.10"), node("edge-1", "10.0.1.11"))
    proc = cli("nodes_ready", VERSION, "10.0.1.10", "10.0.1.11", stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[:2] for line in lines[:-1]] == [["10.0.1.10", "edge-0"], ["10.0.1.11", "edge-1"]]
    assert lines[-1] == "ALL-READY"


def test_nodes_ready_needs_a_version_and_an_ip() -> None:
    proc = cli("nodes_ready", VERSION)
    assert proc.returncode == 2 and "IP" in proc.stderr, proc.stderr
    helped = cli("nodes_ready", "--help")
    assert helped.returncode == 0 and "ALL-READY" in helped.stdout


# --- nodes_lacking_image.py -------------------------------------------------------------------

IMAGE = "localhost/ca4-services:git-0123456789ab"


def test_the_nodes_without_the_image_are_named() -> None:
    lacking = load("nodes_lacking_image").lacking
    nodes = [
        node("edge-0", "10.0.1.10", images=[IMAGE, "localhost/ca4-services@sha256:ab"]),
        node("edge-1", "10.0.1.11", images=["localhost/ca4-services:git-ffffffffffff"]),
        {"metadata": {"name": "edge-2"}, "status": {}},  # no image list at all
    ]
    assert lacking(nodes, IMAGE) == ["edge-1", "edge-2"]


def test_the_command_line_prints_one_name_a_line_and_nothing_when_all_have_it() -> None:
    stdin = node_list(node("edge-0", "10.0.1.10", images=[IMAGE]), node("edge-1", "10.0.1.11"))
    proc = cli("nodes_lacking_image", IMAGE, stdin=stdin)
    assert (proc.returncode, proc.stdout) == (0, "edge-1\n"), proc.stderr
    proc = cli("nodes_lacking_image", IMAGE, stdin=node_list(node("edge-0", "10.0.1.10", images=[IMAGE])))
    assert (proc.returncode, proc.stdout) == (0, ""), proc.stderr


@pytest.mark.parametrize(
    ("stdin", "says"),
    [
        ("not json", "not JSON"),
        ("{}", "no node list"),
        ("[]", "no node list"),
        ('{"items": [{"status": {}}]}', "metadata.name"),
    ],
)
def test_a_broken_node_list_stops_with_exit_1_and_says_why(stdin: str, says: str) -> None:
    """deploy_edge_ca4.sh stops there (set -e) instead of loading the image onto no node."""
    proc = cli("nodes_lacking_image", IMAGE, stdin=stdin)
    assert proc.returncode == 1 and says in proc.stderr and proc.stdout == "", proc.stderr


def test_nodes_lacking_image_needs_the_image() -> None:
    proc = cli("nodes_lacking_image")
    assert proc.returncode == 2 and "IMAGE" in proc.stderr, proc.stderr
    helped = cli("nodes_lacking_image", "--help")
    assert helped.returncode == 0 and "IMAGE" in helped.stdout
