"""ca4/terraform/Makefile, run for real: in a copy of the folder, with a PATH that holds only
the shell tools and (per test) a stand-in terraform/tofu/aws that records its arguments.
No real Terraform, AWS or network is involved."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.iac.terraform_model import TF_ROOT

# what the Makefile and preflight.sh run besides the tools under test
SHELL_TOOLS = ("bash", "env", "make", "sh", "rm", "mv", "mkdir", "touch", "grep", "awk")

FAKE_TOOL = """#!/usr/bin/env bash
# stand-in for {name}: records its arguments, writes what the real one would
printf '{name} %s\\n' "$*" >>"$FAKE_LOG"
case "${{1:-}}" in
  init) mkdir -p .terraform ;;
  plan) for arg; do [[ $arg == -out=* ]] && printf 'binary plan' >"${{arg#-out=}}"; done ;;
  show) [[ ${{2:-}} == -json ]] && printf '{{"format_version":"1.2","fake":true}}\\n' ;;
  sts) [[ -n ${{FAKE_STS_ERROR:-}} ]] && {{ echo "$FAKE_STS_ERROR" >&2; exit 255; }}
       echo "arn:aws:iam::123456789012:user/ca4-ci" ;;
esac
exit 0
"""

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLEEXAMPLE", "AWS_SECRET_ACCESS_KEY": "not-a-real-secret"}
VARIABLES = {
    "TF_VAR_aws_region": "eu-central-1",
    "TF_VAR_my_ip_cidr": "203.0.113.7/32",
    "TF_VAR_ssh_key_name": "ca4",
    "TF_VAR_db_password": "not-a-real-password-123",
}


class Workdir:
    """A copy of ca4/terraform, a bin folder for PATH, and the log the stand-ins write."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path / "terraform"
        # a developer's own state, plans and variables stay out of the copy
        ignore = shutil.ignore_patterns(
            ".terraform", "*.tfplan*", "*.tfstate*", "terraform.tfvars", "*.auto.tfvars"
        )
        shutil.copytree(TF_ROOT, self.dir, ignore=ignore)
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        for tool in SHELL_TOOLS:
            found = shutil.which(tool)
            assert found, f"the test needs {tool} on PATH"
            (self.bin / tool).symlink_to(found)
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.log = tmp_path / "calls.log"
        self.log.touch()

    def fake(self, name: str) -> None:
        """Put a stand-in ``name`` (terraform, tofu, aws) on PATH."""
        path = self.bin / name
        path.write_text(FAKE_TOOL.format(name=name))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def calls(self) -> list[str]:
        """What the stand-ins were asked, in order."""
        return self.log.read_text().splitlines()

    def make(
        self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the copied Makefile with nothing but the bin folder on PATH."""
        environment = {
            "PATH": str(self.bin),
            "HOME": str(self.home),
            "FAKE_LOG": str(self.log),
            **(env or {}),
        }
        return subprocess.run(
            [str(self.bin / "make"), "-C", str(self.dir), *args],
            env=environment,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def work(tmp_path: Path) -> Workdir:
    """A fresh copy of ca4/terraform to run make in."""
    return Workdir(tmp_path)


def test_plan_without_terraform_credentials_or_variables_stops_at_once_naming_all_three(
    work: Workdir,
) -> None:
    """The first thing a new user sees: what is missing, all of it, in a second."""
    started = time.monotonic()
    result = work.make("plan")
    elapsed = time.monotonic() - started
    assert result.returncode == 2, f"make plan: expected exit 2, got {result.returncode}\n{result.stderr}"
    for needle in (
        "cannot run 'make plan'",
        "neither terraform nor tofu is on PATH",
        "AWS credentials",
        "db_password",
    ):
        assert needle in result.stderr, (
            f"make plan: expected {needle!r} in the message, got:\n{result.stderr}"
        )
    assert elapsed < 10, f"make plan: expected to stop at once, took {elapsed:.1f} s"
    assert not (work.dir / "ca4.tfplan").exists(), "make plan: no plan may be written"


def test_plan_with_terraform_but_no_credentials_never_runs_terraform(work: Workdir) -> None:
    """Only the credentials are named; terraform is not even initialised."""
    work.fake("terraform")
    result = work.make("plan", env=VARIABLES)
    assert result.returncode == 2, f"make plan: expected exit 2, got {result.returncode}\n{result.stderr}"
    assert "AWS credentials" in result.stderr, result.stderr
    assert "terraform nor tofu" not in result.stderr and "values for" not in result.stderr, result.stderr
    assert work.calls() == [], f"terraform must not run before the checks pass, it ran: {work.calls()}"


def test_plan_reports_credentials_sts_rejects(work: Workdir) -> None:
    """With the aws CLI present, configured credentials are confirmed with STS first."""
    work.fake("terraform")
    work.fake("aws")
    env = {**CREDENTIALS, **VARIABLES, "FAKE_STS_ERROR": "An error occurred (InvalidClientTokenId)"}
    result = work.make("plan", env=env)
    assert result.returncode == 2, f"make plan: expected exit 2, got {result.returncode}\n{result.stderr}"
    assert "aws sts get-caller-identity` failed: An error occurred (InvalidClientTokenId)" in result.stderr, (
        result.stderr
    )
    assert [c for c in work.calls() if c.startswith("aws")] == [
        "aws sts get-caller-identity --query Arn --output text --cli-connect-timeout 5 --cli-read-timeout 10"
    ], work.calls()
    assert not [c for c in work.calls() if c.startswith("terraform")], work.calls()


def test_aws_check_sts_needs_the_aws_cli(work: Workdir) -> None:
    """AWS_CHECK=sts (instance profiles) says so when the aws CLI is missing."""
    work.fake("terraform")
    result = work.make("plan", "AWS_CHECK=sts", env=VARIABLES)
    assert result.returncode == 2 and "the aws CLI" in result.stderr, result.stderr


def test_plan_inits_once_plans_and_saves_the_json(work: Workdir) -> None:
    """init (first run only), plan -out, show -json; the files are private to the user."""
    work.fake("terraform")
    env = {**CREDENTIALS, **VARIABLES}
    first = work.make("plan", env=env)
    assert first.returncode == 0, f"make plan failed:\n{first.stdout}\n{first.stderr}"
    assert work.calls() == [
        "terraform init -input=false",
        "terraform plan -input=false -out=ca4.tfplan",
        "terraform show -json ca4.tfplan",
    ], work.calls()
    plan_json = work.dir / "ca4.tfplan.json"
    assert '"fake":true' in plan_json.read_text(), f"{plan_json}: expected the output of show -json"
    for path in (work.dir / "ca4.tfplan", plan_json):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, (
            f"{path.name}: expected mode 600 (it holds secrets)"
        )

    work.log.write_text("")
    again = work.make("plan", env=env)
    assert again.returncode == 0, again.stderr
    assert work.calls() == [
        "terraform plan -input=false -out=ca4.tfplan",
        "terraform show -json ca4.tfplan",
    ], f"a second plan must not init again: {work.calls()}"


def test_a_module_provider_change_inits_again(work: Workdir) -> None:
    """A module's versions.tf (its providers) is an input of init, like the root's."""
    work.fake("terraform")
    env = {**CREDENTIALS, **VARIABLES}
    assert work.make("plan", env=env).returncode == 0
    stamp = (work.dir / ".terraform" / ".ca4-init").stat().st_mtime
    module_versions = work.dir / "modules" / "documentdb" / "versions.tf"
    os.utime(module_versions, (stamp + 10, stamp + 10))
    work.log.write_text("")
    again = work.make("plan", env=env)
    assert again.returncode == 0, again.stderr
    assert work.calls()[:1] == ["terraform init -input=false"], (
        f"a newer {module_versions.relative_to(work.dir)} must run init again: {work.calls()}"
    )


def test_tofu_is_used_when_terraform_is_absent(work: Workdir) -> None:
    """Works with terraform or tofu."""
    work.fake("tofu")
    result = work.make("plan", env={**CREDENTIALS, **VARIABLES})
    assert result.returncode == 0, result.stderr
    assert [c.split()[0] for c in work.calls()] == ["tofu", "tofu", "tofu"], work.calls()


def test_apply_applies_exactly_the_saved_plan_once(work: Workdir) -> None:
    """No plan: a clear refusal; after plan: apply the file, then it is gone."""
    work.fake("terraform")
    env = {**CREDENTIALS, **VARIABLES}
    refused = work.make("apply", env=env)
    assert refused.returncode == 2 and "no saved plan" in refused.stderr, refused.stderr
    assert not [c for c in work.calls() if " apply" in c], work.calls()

    assert work.make("plan", env=env).returncode == 0
    work.log.write_text("")
    applied = work.make("apply", env=env)
    assert applied.returncode == 0, applied.stderr
    assert work.calls() == ["terraform apply -input=false ca4.tfplan"], work.calls()
    assert not (work.dir / "ca4.tfplan").exists() and not (work.dir / "ca4.tfplan.json").exists()
    assert work.make("apply", env=env).returncode == 2, "a second apply must find nothing to apply"


def test_destroy_leaves_the_confirmation_to_terraform_unless_forced(work: Workdir) -> None:
    """Without FORCE=1 no -auto-approve (Terraform asks); with it, no prompt."""
    work.fake("terraform")
    env = {**CREDENTIALS, **VARIABLES}
    assert work.make("destroy", env=env).returncode == 0
    assert work.calls()[-1] == "terraform destroy", work.calls()
    assert work.make("destroy", "FORCE=1", env=env).returncode == 0
    assert work.calls()[-1] == "terraform destroy -input=false -auto-approve", work.calls()


def test_nuke_asks_first(work: Workdir) -> None:
    """nuke without FORCE=1 destroys nothing unless the user types nuke."""
    work.fake("terraform")
    env = {**CREDENTIALS, **VARIABLES}
    cancelled = work.make("nuke", env=env)
    assert cancelled.returncode != 0 and "nuke cancelled" in cancelled.stderr, cancelled.stderr
    wrong = work.make("nuke", env=env, stdin="yes\n")
    assert wrong.returncode != 0, wrong.stdout
    assert not [c for c in work.calls() if "destroy" in c], f"nothing may be destroyed: {work.calls()}"

    (work.dir / ".terraform").mkdir()
    confirmed = work.make("nuke", env=env, stdin="nuke\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert "terraform destroy -input=false -auto-approve" in work.calls(), work.calls()
    assert not (work.dir / ".terraform").exists(), "nuke: expected clean to remove .terraform"


def test_nuke_with_force_does_not_ask(work: Workdir) -> None:
    """FORCE=1 is for scripts: no prompt."""
    work.fake("terraform")
    result = work.make("nuke", "FORCE=1", env={**CREDENTIALS, **VARIABLES})
    assert result.returncode == 0, result.stderr
    assert "terraform destroy -input=false -auto-approve" in work.calls(), work.calls()


def test_clean_keeps_state_lock_and_variables(work: Workdir) -> None:
    """clean removes only what init and plan produced; it is idempotent."""
    keep = ("terraform.tfstate", "terraform.tfvars", ".terraform.lock.hcl")
    gone = ("ca4.tfplan", "ca4.tfplan.json")
    for name in keep + gone:
        (work.dir / name).write_text("x")
    (work.dir / ".terraform" / "providers").mkdir(parents=True)
    for _ in range(2):
        result = work.make("clean")
        assert result.returncode == 0, result.stderr
    assert all((work.dir / n).exists() for n in keep), f"clean must keep {keep}"
    assert not any((work.dir / n).exists() for n in (*gone, ".terraform")), (
        "clean must remove plans and .terraform"
    )


def test_the_makefile_and_preflight_are_executable_bash() -> None:
    """preflight.sh keeps its exec bit (make calls it directly) and the Makefile runs bash strictly."""
    preflight = TF_ROOT / "preflight.sh"
    assert os.access(preflight, os.X_OK), f"{preflight}: expected the executable bit"
    assert preflight.read_text().splitlines()[:1] == ["#!/usr/bin/env bash"], (
        "preflight.sh: expected a bash shebang"
    )
    assert "set -euo pipefail" in preflight.read_text()
    makefile = (TF_ROOT / "Makefile").read_text()
    assert ".SHELLFLAGS := -euo pipefail -c" in makefile and "SHELL := bash" in makefile
