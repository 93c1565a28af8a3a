"""``make rehearsal``: the whole ca4-* lifecycle on the rehearsal, through the same Makefile targets
and scripts a user runs against AWS, twice.

1. The bare instances (``Cluster.nodes``: bastion, nodes with containerd and sshd, the AWS
   stand-ins), the stand-in images on the nodes, and the project's image built with buildah on a
   debootstrap base (no registry serves python:slim here), under the tag ``ca4-image-build`` names,
   which that target then finds built.
2. Round 1: every target of ``TARGETS`` through ``make``, with the rehearsal's configuration only
   (``Cluster.script_env`` and ``verify_env``: ``CA4_*`` and ``AWS_*`` variables, no branch in a
   script). It stops at the first target that fails.
3. Round 2: the same list again. It must change nothing: the same pods (uid, restarts), the same
   Secrets (resourceVersion), and ``kubectl diff`` of everything the scripts apply empty. Then,
   once, ``DISRUPTIVE``: ``ca4-verify-resilience`` deletes a Kafka broker's pod under load.
4. ``reports/verify-rehearsal.md``: each target's exit status and time in both rounds, the
   idempotency checks, what differs from AWS and which checks cannot run here.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_stack.procs import note, step
from rehearsal import standins
from rehearsal.cluster import Cluster
from rehearsal.topology import S3_ADDR

REPO = Path(__file__).resolve().parents[2]
TARGETS = (
    "ca4-plan",
    "ca4-apply",
    "ca4-bootstrap-k3s",
    "ca4-tunnels-up",
    "ca4-platform-setup",
    "ca4-image-build",
    "ca4-image-load",
    "ca4-deploy-edge",
    "ca4-deploy-monitoring",
    "ca4-verify-preflight",
    "ca4-verify-kafka",
    "ca4-verify-db",
    "ca4-verify-e2e",
)
# after both rounds, once: it deletes a Kafka broker's pod, which round 2 must not see
DISRUPTIVE = ("ca4-verify-resilience",)
TARGET_TIMEOUT_S = 1200
WATCHED = ("kube-system", "platform", "app", "monitoring")
MONITORING_OVERLAY = Path(__file__).resolve().parent / "overlays" / "monitoring"


@dataclass
class Run:
    """One ``make`` target's outcome."""

    target: str
    round: int
    status: int
    seconds: float
    log: Path


@dataclass
class Lifecycle:
    """One ``make rehearsal`` run."""

    cluster: Cluster
    reports: Path = REPO / "reports"
    runs: list[Run] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)  # one-shot Jobs that ran again in round 2

    def verify_env(self) -> dict[str, str]:
        """What the operator's own tools (boto3 in the live features) need to reach the S3
        stand-in, and the monitoring overlay: environment, as a user's ``aws configure`` is."""
        aws = self.cluster.aws
        return {
            "AWS_ENDPOINT_URL_S3": f"https://{S3_ADDR}",
            "AWS_CA_BUNDLE": str(aws.public_ca.path("ca.crt")),
            "AWS_ACCESS_KEY_ID": "rehearsal",
            "AWS_SECRET_ACCESS_KEY": "rehearsal",  # moto accepts any
            "CA4_MONITORING_MANIFESTS": str(MONITORING_OVERLAY),
        }

    def configuration(self) -> dict[str, str]:
        """Everything the rehearsal sets for the targets (``python -m rehearsal env`` prints it)."""
        return {**self.cluster.script_env(), **self.verify_env()}

    def env(self) -> dict[str, str]:
        """The targets' environment: this one plus the rehearsal's configuration."""
        return {**os.environ, **self.configuration()}

    # --- the run ------------------------------------------------------------------------------

    def run(self) -> bool:
        """Prepare, both rounds, the checks, the report; True when everything held."""
        started = time.monotonic()
        self.prepare()
        ok = self.round(1)
        if ok:
            before = self.snapshot()
            ok = self.round(2)
            if ok:
                self.idempotent(before, self.snapshot())
                ok = self.round(3, DISRUPTIVE)
        self.report(time.monotonic() - started)
        return ok and not self.findings

    def prepare(self) -> None:
        """The instances, the stand-in images on them, the project's image in the local store."""
        self.cluster.nodes()
        self.cluster.standin_images(load=True)
        self.cluster.build_project_image()

    def round(self, number: int, targets: tuple[str, ...] = TARGETS) -> bool:
        """Every target once, in the contract's order; False at the first failure."""
        logs = self.reports / "rehearsal"
        logs.mkdir(parents=True, exist_ok=True)
        env = self.env()
        for target in targets:
            log = logs / f"round{number}-{target}.log"
            begun = time.monotonic()
            with step(f"round {number}: make {target}"), log.open("w") as out:
                done = subprocess.run(
                    self.cluster.scratch_var_lib(["make", "--no-print-directory", "-C", str(REPO), target]),
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=TARGET_TIMEOUT_S,
                    check=False,
                )
            self.runs.append(Run(target, number, done.returncode, time.monotonic() - begun, log))
            live_report = self.reports / "verify-live.md"
            if target.startswith("ca4-verify-") and live_report.exists():
                # each verify target rewrites it: keep each one's beside its log
                live_report.replace(logs / f"round{number}-{target}.md")
            if done.returncode != 0:
                note(f"make {target} exited {done.returncode}; its output: {log}")
                note(_tail(log))
                return False
            if target == "ca4-bootstrap-k3s":
                self.cluster.admin_kubeconfig()
        return True

    # --- idempotency --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Pods (uid and restarts) and Secrets (resourceVersion) of the CA4 namespaces.

        A Job's pod is a run, not a service: ``ca4-platform-setup`` runs the kafka-topics Job
        again each time by design (it re-checks the topics, creating only what is missing), so
        those pods are listed apart, by Job.
        """
        pods: dict[str, Any] = {}
        secrets: dict[str, str] = {}
        jobs: dict[str, str] = {}
        for namespace in WATCHED:
            for item in self._items("pods", namespace):
                owners = [o for o in item["metadata"].get("ownerReferences", []) if o.get("kind") == "Job"]
                if owners:
                    jobs[f"{namespace}/{owners[0]['name']}"] = item["status"].get("phase", "")
                    continue
                restarts = sum(c.get("restartCount", 0) for c in item["status"].get("containerStatuses", []))
                pods[f"{namespace}/{item['metadata']['name']}"] = (item["metadata"]["uid"], restarts)
            for item in self._items("secrets", namespace):
                secrets[f"{namespace}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
        return {"pods": pods, "secrets": secrets, "jobs": jobs}

    def _items(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        done = self.cluster.kubectl("-n", namespace, "get", kind, "-o", "json")
        return list(json.loads(done.stdout)["items"])

    def idempotent(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        """Round 2 changed nothing: findings name what did change."""
        for what in ("pods", "secrets"):
            gone = sorted(set(before[what]) - set(after[what]))
            new = sorted(set(after[what]) - set(before[what]))
            changed = sorted(
                k for k in set(before[what]) & set(after[what]) if before[what][k] != after[what][k]
            )
            for label, names in (("gone", gone), ("new", new), ("changed", changed)):
                if names:
                    self.findings.append(f"round 2: {what} {label}: {', '.join(names)}")
        failed = sorted(job for job, phase in after["jobs"].items() if phase != "Succeeded")
        if failed:
            self.findings.append(f"round 2: Jobs not succeeded: {', '.join(failed)}")
        self.jobs = sorted(after["jobs"])
        render = Path(self.cluster.script_env()["CA4_RENDER_DIR"])
        for kustomization in (render / "platform", render / "app", MONITORING_OVERLAY):
            diff = self.cluster.kubectl(
                "diff",
                "--server-side",
                "--field-manager=ca4",
                "--force-conflicts",
                "-k",
                str(kustomization),
                check=False,
            )
            if diff.returncode != 0:
                self.findings.append(
                    f"kubectl diff -k {kustomization} after round 2 (exit {diff.returncode}):\n"
                    + (diff.stdout + diff.stderr)[-1500:]
                )
        note("round 2 changed nothing" if not self.findings else f"round 2: {len(self.findings)} finding(s)")

    # --- the report ---------------------------------------------------------------------------

    def report(self, seconds: float) -> Path:
        """reports/verify-rehearsal.md."""
        path = self.reports / "verify-rehearsal.md"
        lines = [
            "# Rehearsal: the ca4-* lifecycle on the rehearsal cluster",
            "",
            f"Nodes: {self.cluster.s.nodes}. Whole run: {seconds:.0f} s. "
            "Written by `make rehearsal` (services/rehearsal/lifecycle.py).",
            "",
            "| target | round 1 | round 2 |",
            "| --- | --- | --- |",
        ]
        by = {(r.target, r.round): r for r in self.runs}

        def cell(target: str, number: int) -> str:
            r = by.get((target, number))
            if r is None:
                return "not run"
            return f"{'ok' if r.status == 0 else f'exit {r.status}'} {r.seconds:.0f} s"

        for target in TARGETS:
            lines.append(f"| `make {target}` | {cell(target, 1)} | {cell(target, 2)} |")
        for target in DISRUPTIVE:
            lines.append(f"| `make {target}` (once, after round 2) | {cell(target, 3)} | |")
        lines += ["", "## Round 2 changed nothing", ""]
        if len([r for r in self.runs if r.round <= 2]) < 2 * len(TARGETS):
            lines.append("Not checked: the rounds did not both complete.")
        elif self.findings:
            lines += [f"- {f}" for f in self.findings]
        else:
            lines.append(
                "Same pods (uid, restarts) and Secrets (resourceVersion) in "
                + ", ".join(WATCHED)
                + "; `kubectl diff` of the rendered platform and app overlays and the monitoring "
                + "kustomization empty."
            )
            if self.jobs:
                lines.append(
                    "The Jobs "
                    + ", ".join(f"`{j}`" for j in self.jobs)
                    + " ran again and succeeded, as every `ca4-platform-setup` runs them "
                    + "(they re-check the topics, creating only what is missing)."
                )
        lines += ["", "## Not run here: no registry reachable here serves their images", ""]
        lines += [f"- {name}: {why}" for name, why in standins.UNAVAILABLE.items()]
        lines += [
            "",
            "So the dashboards' panels that read kafka-exporter's metrics (`kafka_*`: Kafka's view "
            "of lag, write rate and replication) and the two Loki panels are not proven here; "
            "`ca4-verify-kafka` checks replication through Kafka itself, and `ca4-verify-preflight` "
            "proves the container and node panels (cAdvisor) and Prometheus scraping every API and "
            "worker pod. Each target's Gherkin report: `reports/rehearsal/round<N>-<target>.md`.",
        ]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        note(f"report: {path}")
        return path


def _tail(path: Path, lines: int = 30) -> str:
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(text)
