"""What a Terraform binary can check without providers or a network: formatting, and the
root variables' validation rules (evaluated by Terraform itself on variables.tf alone).
Skipped with a reason where neither terraform nor tofu is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.iac.terraform_model import TF_ROOT

BINARY = shutil.which("terraform") or shutil.which("tofu")
pytestmark = pytest.mark.skipif(BINARY is None, reason="neither terraform nor tofu is installed")

VALID = {"db_password": "a-long-enough-password-1"}


def run(args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """Run the binary offline: no version check, no CLI config, no colour."""
    (home / "empty.tfrc").touch()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
        "TF_CLI_CONFIG_FILE": str(home / "empty.tfrc"),
    }
    assert BINARY is not None
    return subprocess.run(
        [BINARY, *args, "-no-color"] if args[0] != "fmt" else [BINARY, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_terraform_fmt_is_clean(tmp_path: Path) -> None:
    """Every .tf file is in canonical format."""
    result = run(["fmt", "-check", "-recursive", "-diff", str(TF_ROOT)], tmp_path, tmp_path)
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="module")
def variables_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A configuration of the root variables alone: plan evaluates their validations, no provider needed."""
    work = tmp_path_factory.mktemp("variables")
    shutil.copy(TF_ROOT / "variables.tf", work)
    shutil.copy(TF_ROOT / "terraform.tfvars.example", work / "example.tfvars")
    result = run(["init", "-input=false", "-backend=false"], work, work)
    assert result.returncode == 0, f"terraform init of variables.tf alone failed:\n{result.stderr}"
    return work


def plan(work: Path, overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Plan the variables-only configuration with the example values plus ``overrides``."""
    args = ["plan", "-input=false", "-lock=false", "-var-file=example.tfvars"]
    args += [f"-var={k}={v}" for k, v in {**VALID, **overrides}.items()]
    return run(args, work, work)


def test_the_example_values_pass_every_validation(variables_only: Path) -> None:
    """terraform.tfvars.example plus a password is a working configuration."""
    result = plan(variables_only, {})
    assert result.returncode == 0, f"the example values fail validation:\n{result.stderr}"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("my_ip_cidr", "0.0.0.0/0"),
        ("my_ip_cidr", "10.0.0.0/8"),
        ("my_ip_cidr", "203.0.113.7"),
        ("vpc_cidr", "10.42.0.0/16"),
        ("vpc_cidr", "10.0.0.0/8"),
        ("name_prefix", "CA4_prod"),
        ("edge_node_count", "0"),
        ("db_instance_count", "1.5"),
        ("db_password", "short"),
        ("db_password", "has-an-@-in-it-123"),
        ("db_username", "admin"),
        ("db_cluster_params", '{tls = "disabled"}'),
        ("db_cluster_params", '{tls = "enabled"}'),  # accepts TLS 1.0 and 1.1
        ("db_cluster_params", '{audit_logs = "disabled"}'),
        ("db_backup_retention_days", "3"),
        ("edge_node_metadata_hop_limit", "3"),
        ("api_ingress_cidrs", "[]"),
        ("archive_prefix", "no-trailing-slash"),
        (
            "archive_lifecycle",
            "{raw = {standard_ia_after_days = 10, glacier_ir_after_days = 90, expire_after_days = 365}}",
        ),
        ("api_node_port", "8080"),
    ],
)
def test_validation_refuses(variables_only: Path, variable: str, value: str) -> None:
    """Insecure or broken values stop at plan time with a message naming the variable."""
    result = plan(variables_only, {variable: value})
    assert result.returncode != 0, f"{variable}={value}: expected plan to refuse it, it passed"
    assert "Invalid value for variable" in result.stderr and variable in result.stderr, (
        f"{variable}={value}: expected a validation error naming it, got:\n{result.stderr}"
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("db_cluster_params", '{tls = "tls1.3+"}'),
        ("db_cluster_params", '{tls = "fips-140-3", audit_logs = "all"}'),
        ("db_instance_count", "2"),
    ],
)
def test_validation_accepts_tighter_settings(variables_only: Path, variable: str, value: str) -> None:
    """Tightening TLS and auditing, or adding a reader, passes."""
    result = plan(variables_only, {variable: value})
    assert result.returncode == 0, f"{variable}={value}: expected plan to accept it:\n{result.stderr}"
