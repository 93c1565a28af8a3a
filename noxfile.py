"""Every CA4 task. `make` targets call these; run `nox -l` to list them.

Each session installs what it needs from pyproject.toml's dependency groups, frozen to
uv.lock, into its own virtualenv (uv makes that a matter of seconds once cached).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True
# the one list of default sessions: what `make test` (and so CI) runs, in this order (`make test`
# calls plain `nox`; `nox -l` marks them with *). Every other session runs only when named.
nox.options.sessions = [
    "lint",
    "unit",
    "integration",
    "iac_scan",
    "iac_test",
    "k8s",
    "k8s_scan",
    "ssh",
    "monitoring",
    "reliability",
    "rehearsal_test",
]

PYTHON = "3.11"
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")  # use the machine's Python, never download one


def install(session: nox.Session, *groups: str) -> None:
    """Sync the project and the given dependency groups from uv.lock into the session's venv."""
    args = ["uv", "sync", "--frozen", "--no-default-groups", *(f"--group={g}" for g in groups)]
    session.run_install(*args, env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location}, silent=True)


# --- the code: lint, unit tests, the pipeline and its features (local stack, or live) -------


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff (lint + format check) and mypy --strict over the services and scripts/lib."""
    install(session, "lint", "docker")  # mypy checks the optional testcontainers backend too
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session(python=PYTHON)
def unit(session: nox.Session) -> None:
    """Unit tests: fakes only, no network, a few seconds."""
    install(session, "test")
    session.run("pytest", "tests/unit", *session.posargs)


def _feature_reports(target: str) -> list[str]:
    """pytest options for a run of the features against ``target``, with its reports in reports/."""
    os.makedirs("reports", exist_ok=True)
    return [
        f"--target={target}",
        "-v",
        "--gherkin-terminal-reporter",
        f"--cucumberjson=reports/cucumber-{target}.json",
        f"--junitxml=reports/junit-{target}.xml",
        f"--bdd-report=reports/verify-{target}.md",
    ]


@nox.session(python=PYTHON)
def integration(session: nox.Session) -> None:
    """Integration tests and every Gherkin feature on one real local stack (the notebook run headlessly too).

    One pytest process, so the stack starts once; the features' reports go to reports/*-local.*
    as with `nox -s local`.
    """
    install(session, "test", "notebook")
    session.run("pytest", "tests/integration", "tests/bdd", *_feature_reports("local"), *session.posargs)


def _features(session: nox.Session, target: str) -> None:
    """Run the features against ``target`` into reports/; posargs: features/x.feature or pytest args."""
    tags = [os.path.basename(a).removesuffix(".feature") for a in session.posargs if a.endswith(".feature")]
    rest = [a for a in session.posargs if not a.endswith(".feature")]
    selection = ["-m", " or ".join(tags)] if tags else []
    session.run("pytest", "tests/bdd", *_feature_reports(target), *selection, *rest)


@nox.session(python=PYTHON)
def local(session: nox.Session) -> None:
    """Gherkin features alone against their own local stack (`make local-verify`); reports in reports/.

    `make test` runs them inside the integration session instead, on its stack.
    """
    install(session, "test", "notebook")  # the e2e feature runs the Colab notebook
    _features(session, "local")


@nox.session(python=PYTHON)
def live(session: nox.Session) -> None:
    """The same features against the live cluster through the tunnels (`-- features/e2e.feature` for one)."""
    install(session, "test", "live", "notebook")  # the e2e feature runs the Colab notebook
    _features(session, "live")


@nox.session(python=PYTHON)
def stack(session: nox.Session) -> None:
    """The local stack CLI: `nox -s stack -- up|down|status|demo|clean|env api`."""
    install(session, "test")  # moto[server] is the local S3 endpoint
    session.run("python", "-m", "local_stack", *(session.posargs or ["--help"]), external=False)


# --- the rehearsal cluster: a real Kubernetes on this machine, the whole ca4-* lifecycle ------


@nox.session(python=PYTHON)
def rehearsal_test(session: nox.Session) -> None:
    """Tests on the rehearsal cluster (root): nodes Ready at the pin, pods, Services, DNS, a clean down;
    then the whole ca4-* lifecycle on it (`make rehearsal`, brought down after)."""
    install(session, "test")
    # the binaries and the stand-in images first, with their progress lines (cold: about
    # 17 minutes on two cores, cached after): not inside a test, whose timeout would cut them
    session.run("python", "-m", "rehearsal", "build")
    session.run("python", "-m", "rehearsal", "standins", "--build-only")
    session.run("pytest", "tests/rehearsal", *session.posargs)
    # then what `make rehearsal` runs, on a rehearsal of its own: every ca4-* target of the
    # contract, twice (the second round must change nothing), brought down afterwards
    if not session.posargs:
        session.run("python", "-m", "rehearsal", "lifecycle", "--down")


@nox.session(python=PYTHON)
def rehearsal(session: nox.Session) -> None:
    """The rehearsal cluster CLI: `nox -s rehearsal -- up|down|status|build` (root; make rehearsal-up).
    The test group brings moto and boto3: the S3 stand-in runs from this venv."""
    install(session, "test")
    session.run("python", "-m", "rehearsal", *(session.posargs or ["--help"]), external=False)


# --- the demo, and what the project ships: the producer bundle, the event schema -------------


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Bring the local stack up and push the H200 captures through it (what `make local-demo` runs)."""
    install(session, "test")
    session.run("python", "-m", "local_stack", "demo", *session.posargs)


@nox.session(python=PYTHON)
def bundle(session: nox.Session) -> None:
    """Build dist/ca4_producer.zip, the producer bundle the Colab notebook imports (prints its SHA-256)."""
    install(session)
    session.run("python", "-m", "ca4_producer", "bundle", "--out", "dist", *session.posargs)


@nox.session(python=PYTHON)
def schema(session: nox.Session) -> None:
    """Regenerate schemas/gpu-metadata-event.v1.schema.json from the pydantic models."""
    install(session)
    with open("schemas/gpu-metadata-event.v1.schema.json", "w") as out:
        session.run("python", "-m", "ca4_events", "schema", stdout=out)


# --- Terraform without a cloud: checkov, the HCL tests, the diagrams ------------------------

IAC_DIR = Path("ca4/terraform")
IAC_REPORTS = Path("reports/iac")
CHECKOV_SKIP = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+):(.*)")


def install_only(session: nox.Session, *groups: str) -> None:
    """Sync only the given dependency groups from uv.lock into the session's venv, not the project."""
    args = ["uv", "sync", "--frozen", "--no-default-groups", *(f"--only-group={g}" for g in groups)]
    session.run_install(*args, env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location}, silent=True)


@nox.session(python=PYTHON)
def iac_scan(session: nox.Session) -> None:
    """checkov over ca4/terraform, offline: zero failed checks, every skip inline with its reason."""
    install_only(session, "checkov")
    IAC_REPORTS.mkdir(parents=True, exist_ok=True)
    report = IAC_REPORTS / "checkov.json"
    # fails (exit 1) on any failed check; prints only failures and the summary
    session.run(
        "checkov", "-d", str(IAC_DIR), "--framework", "terraform",
        "--skip-download", "--compact", "--quiet",
        "-o", "cli", "-o", "json", "--output-file-path", f"console,{report}",
        *session.posargs,
        env={"SKIP_PACKAGE_UPDATE_CHECK": "true"},  # no version lookup: the scan stays offline
    )  # fmt: skip
    summary = json.loads(report.read_text())["summary"]
    skips = [
        f"  {m.group(1)} ({path}:{number}): {m.group(2).strip()}"
        for path in sorted(IAC_DIR.rglob("*.tf"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if (m := CHECKOV_SKIP.search(line))
    ]
    session.log(
        f"checkov {summary['checkov_version']}: {summary['passed']} passed, {summary['failed']} failed, "
        f"{summary['skipped']} skipped (reasons inline in the code):\n" + "\n".join(skips)
    )
    if summary["skipped"] != len(skips) or summary["parsing_errors"]:
        session.error(
            f"checkov applied {summary['skipped']} skips (parsing errors: {summary['parsing_errors']}) but "
            f"the code has {len(skips)} #checkov:skip comments: a skip is misplaced or a file did not parse"
        )


@nox.session(python=PYTHON)
def iac_test(session: nox.Session) -> None:
    """Static tests of ca4/terraform (python-hcl2), its Makefile run for real, the contract, the diagrams."""
    install(session, "hcl", "test")  # test: the root conftest loads the stack fixtures
    session.run("pytest", "tests/iac", *session.posargs)


@nox.session(python=PYTHON)
def diagrams(session: nox.Session) -> None:
    """Render ca4/docs/*.puml to SVG with Debian's plantuml and graphviz (installed when missing)."""
    session.run("bash", "ca4/docs/ensure_diagram_tools.sh", external=True)
    session.run("python", "ca4/docs/render_diagrams.py", *session.posargs)


# --- the manifests, the SSH lab (bastion, tunnels), monitoring ------------------------------


@nox.session(python=PYTHON)
def k8s(session: nox.Session) -> None:
    """Manifests, rendering and live scripts, statically: kubernetes-validate, the contract, shellcheck."""
    install(session, "test", "k8s")
    session.run("pytest", "tests/k8s", *session.posargs)


@nox.session(python=PYTHON)
def k8s_scan(session: nox.Session) -> None:
    """checkov over the Kubernetes manifests and the Dockerfile, offline; skips inline with reasons."""
    install_only(session, "checkov")
    quiet = ["--skip-download", "--compact", "--quiet"]
    env = {"SKIP_PACKAGE_UPDATE_CHECK": "true"}
    dirs = ["-d", "manifests/platform", "-d", "manifests/app", "-d", "manifests/monitoring"]
    session.run("checkov", *dirs, "--framework", "kubernetes", *quiet, env=env)
    session.run("checkov", "-f", "Dockerfile", "--framework", "dockerfile", *quiet, env=env)


@nox.session(python=PYTHON)
def ssh(session: nox.Session) -> None:
    """K3s bootstrap and tunnels over real SSH: sshd in network namespaces (root, Linux; skips otherwise)."""
    install(session, "test", "k8s")
    session.run("pytest", "tests/ssh", *session.posargs)


@nox.session(python=PYTHON)
def monitoring(session: nox.Session) -> None:
    """Static checks of manifests/monitoring: promtool, dashboards, Loki/Alloy configs, kustomize build."""
    install(session, "test", "k8s")
    session.run("pytest", "tests/monitoring", *session.posargs)


# --- faults and hostile input on the local stack ---------------------------------------------


@nox.session(python=PYTHON)
def reliability(session: nox.Session) -> None:
    """Fault injection, hostile input and a benchmark smoke run, at smoke scale (part of make test)."""
    install(session, "test", "fuzz")
    session.run(
        "pytest",
        "tests/reliability",
        "tests/soak",
        "tests/bench",
        "-m",
        "not full_scale",
        *session.posargs,
        env={"CA4_RELIABILITY_SCALE": "smoke", "CA4_SOAK_MINUTES": "2"},
    )


@nox.session(python=PYTHON)
def chaos(session: nox.Session) -> None:
    """The full set: 5000-event streams, 3 worker kills, 10 s outages, 100 poison records, deep fuzzing."""
    install(session, "test", "fuzz")
    session.run(
        "pytest",
        "tests/reliability",
        "-o",
        "timeout=1800",
        *session.posargs,
        env={"CA4_RELIABILITY_SCALE": "full"},
    )


@nox.session(python=PYTHON)
def soak(session: nox.Session) -> None:
    """20 minutes at 200 events/s, archive on: memory and p99 per minute, every event stored once."""
    install(session, "test")
    minutes = os.environ.get("CA4_SOAK_MINUTES", "20")
    timeout = str(int(minutes) * 60 + 900) if minutes.isdigit() else "2100"
    session.run(
        "pytest",
        "tests/soak",
        "-o",
        f"timeout={timeout}",
        *session.posargs,
        env={"CA4_SOAK_MINUTES": minutes},
    )


# --- performance: the benchmark ----------------------------------------------------------------


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The benchmark against a fresh local stack: reports/bench.json and reports/bench.md."""
    install(session, "test")
    session.run("python", "-m", "tests.bench", *session.posargs)
