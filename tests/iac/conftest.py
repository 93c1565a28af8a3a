"""Fixtures of the infrastructure tests: the parsed Terraform tree and the repository paths."""

from __future__ import annotations

import pytest

from tests.iac.terraform_model import TerraformTree


@pytest.fixture(scope="session")
def tf() -> TerraformTree:
    """ca4/terraform, parsed once per session."""
    return TerraformTree()
