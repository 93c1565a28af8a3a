"""Steps of preflight.feature."""

from __future__ import annotations

from pytest_bdd import parsers, then, when

from tests.bdd.targets.base import Target

NEEDS = {
    "kafka": ("kafka",),
    "database": ("database",),
    "processor-api": ("api",),
    "metadata-worker": ("worker",),
    "prometheus": ("prometheus",),
    "s3-archive": ("s3",),
}


@when(parsers.parse('I probe the component "{component}"'), target_fixture="probe")
def probe_component(target: Target, component: str) -> tuple[str, bool, str]:
    """Ask the target whether one component is ready."""
    target.require(*NEEDS[component])
    ready, seen = target.component_ready(component)
    return component, ready, seen


@then("the component reports ready")
def component_ready(probe: tuple[str, bool, str]) -> None:
    """The probe said ready."""
    component, ready, seen = probe
    assert ready, f"{component} is not ready: {seen}"


@when("I list the Kubernetes nodes", target_fixture="nodes")
def list_nodes(target: Target) -> list[tuple[str, bool]]:
    """Nodes and their Ready condition."""
    target.require("cluster")
    return target.nodes()


@then("there is at least one node")
def at_least_one_node(nodes: list[tuple[str, bool]]) -> None:
    """The cluster has nodes."""
    assert nodes, "the cluster lists no nodes"


@then("every node reports Ready")
def every_node_ready(nodes: list[tuple[str, bool]]) -> None:
    """No node is NotReady."""
    not_ready = [name for name, ready in nodes if not ready]
    assert not not_ready, f"nodes not Ready: {not_ready}"


@when(parsers.parse('I list the pods of namespace "{namespace}"'), target_fixture="pods")
def list_pods(target: Target, namespace: str) -> tuple[str, list[tuple[str, bool]]]:
    """Pods of one namespace."""
    target.require("cluster")
    return namespace, target.pods(namespace)


@then("there is at least one pod")
def at_least_one_pod(pods: tuple[str, list[tuple[str, bool]]]) -> None:
    """The namespace is not empty."""
    namespace, items = pods
    assert items, f"namespace {namespace} has no pods"


@then("every pod is running and ready")
def every_pod_ready(pods: tuple[str, list[tuple[str, bool]]]) -> None:
    """No pod is pending, crashing or unready."""
    namespace, items = pods
    not_ready = [name for name, ready in items if not ready]
    assert not not_ready, f"pods in {namespace} not running and ready: {not_ready}"
