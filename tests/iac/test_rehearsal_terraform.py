"""The rehearsal's Terraform root (services/rehearsal/terraform) stands in for ca4/terraform: a real
``terraform apply`` of it, offline (it has no provider), gives exactly the outputs of
ca4/terraform/outputs.tf, by name, type and sensitivity, so the ca4-* scripts read it as they read
the AWS stack's.

The live outputs' types come from their expressions: variables by their declared type, locals and
string templates as strings, module outputs followed into the module, and the few provider
attributes they end in by the provider schemas' types (``ATTRIBUTE_TYPES``). Terraform writes a
splat over ``count`` as a tuple; its JSON is the same array as a ``list(string)``, so both are
compared as ``["list", "string"]``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.iac.terraform_model import REPO, ROOT, TerraformTree
from tests.iac.test_terraform_cli import BINARY, run

REHEARSAL_ROOT = REPO / "services" / "rehearsal" / "terraform"

# The provider schemas' types of the attributes the live outputs end in.
ATTRIBUTE_TYPES = {
    ("aws_eip", "public_ip"): "string",
    ("aws_instance", "private_ip"): "string",
    ("aws_docdb_cluster", "endpoint"): "string",
    ("aws_docdb_cluster", "port"): "number",
    ("aws_s3_bucket", "bucket"): "string",
    ("aws_lb", "dns_name"): "string",
    ("aws_lb", "zone_id"): "string",
    ("tls_self_signed_cert", "cert_pem"): "string",
}
_REF = re.compile(r"^\$\{(.+)\}$")
_ATTRIBUTE = re.compile(r"^(?:one\()?([a-z0-9_]+)\.([a-z0-9_]+)(\[\*\])?\.([a-z0-9_]+)\)?$")
_MODULE_OUTPUT = re.compile(r"^module\.([a-z0-9_]+)\.([a-z0-9_]+)(\[0\])?$")
_TYPE = re.compile(r"^(?:\$\{)?(string|number|bool|list\(string\))\}?$")

SAMPLE = {
    "aws_region": "us-east-1",
    "my_ip_cidr": "198.18.0.1/32",
    "ssh_key_name": "ca4-rehearsal",
    "db_password": "a/secret@with:odd chars",
    "bastion_address": "198.18.0.2",
    "ssh_user": "root",
    "edge_node_addresses": ["10.0.1.10", "10.0.1.11", "10.0.1.12"],
    "documentdb_host": "documentdb.db.svc.cluster.local",
    "documentdb_port": 27017,
    "documentdb_uri_options": "tls=true&tlsCAFile=global-bundle.pem&retryWrites=false",
    "s3_bucket_name": "ca4-archive-rehearsal",
    "edge_api_host": "api.ca4.rehearsal",
    "edge_api_ca_certificate_pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
}


def _declared(type_expr: str) -> Any:
    match = _TYPE.match(type_expr)
    assert match, f"variable type {type_expr!r} is not one this test knows"
    return ["list", "string"] if match.group(1) == "list(string)" else match.group(1)


def expression_type(tree: TerraformTree, module: str, expression: Any) -> Any:
    """The JSON type (as ``terraform output -json`` writes it) of an output's value expression."""
    if not isinstance(expression, str):
        return "number" if isinstance(expression, int | float) else "string"
    ref = _REF.match(expression)
    if ref is None or "${" in ref.group(1):
        return "string"  # a literal or a template with text around its interpolations
    inner = ref.group(1)
    if inner.startswith("var."):
        return _declared(tree.variable(module, inner[4:]).body["type"])
    if inner.startswith("local."):
        return expression_type(tree, module, tree.modules[module].locals[inner[6:]])
    return _reference_type(tree, inner)


def _reference_type(tree: TerraformTree, inner: str) -> Any:
    """A module output (followed into the module) or a provider attribute."""
    if match := _MODULE_OUTPUT.match(inner):
        value = tree.output(match.group(1), match.group(2)).body["value"]
        found = expression_type(tree, match.group(1), value)
        if match.group(3):
            assert found == ["list", "string"], f"{inner}: indexing a {found}"
            return "string"
        return found
    match = _ATTRIBUTE.match(inner)
    assert match, f"cannot tell the type of {inner!r}"
    resource, _, splat, attribute = match.groups()
    element = ATTRIBUTE_TYPES.get((resource, attribute))
    assert element, f"{inner}: add the provider's type of {resource}.{attribute} to ATTRIBUTE_TYPES"
    return ["list", element] if splat and not inner.startswith("one(") else element


def live_outputs(tree: TerraformTree) -> dict[str, tuple[Any, bool]]:
    """ca4/terraform's outputs: name -> (type, sensitive)."""
    return {
        block.name: (expression_type(tree, ROOT, block.body["value"]), bool(block.body.get("sensitive")))
        for block in tree.blocks("output", module=ROOT)
    }


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``terraform output -json`` after a real init, plan and apply of the rehearsal's root."""
    if BINARY is None:
        pytest.fail("neither terraform nor tofu is installed: the rehearsal's root cannot be applied")
    work = tmp_path_factory.mktemp("rehearsal-tf")
    for tf in REHEARSAL_ROOT.glob("*.tf"):
        shutil.copy(tf, work)
    (work / "terraform.tfvars.json").write_text(json.dumps(SAMPLE))
    for args in (
        ["init", "-input=false"],
        ["plan", "-input=false", "-out=p"],
        ["apply", "-input=false", "p"],
    ):
        done = run(args, work, work)
        assert done.returncode == 0, f"terraform {args[0]} of the rehearsal's root failed:\n{done.stderr}"
    done = run(["output", "-json"], work, work)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_the_outputs_have_the_live_names_types_and_sensitivity(
    tf: TerraformTree, applied: dict[str, Any]
) -> None:
    """Same names, same JSON types, same sensitive flags as ca4/terraform/outputs.tf."""
    live = live_outputs(tf)
    rehearsal = {name: (entry["type"], entry["sensitive"]) for name, entry in applied.items()}
    assert sorted(rehearsal) == sorted(live), (
        f"only in ca4/terraform: {sorted(set(live) - set(rehearsal))}; "
        f"only in the rehearsal: {sorted(set(rehearsal) - set(live))}"
    )
    differ = {n: (live[n], rehearsal[n]) for n in live if live[n] != rehearsal[n]}
    assert not differ, f"(live, rehearsal) (type, sensitive) differ: {differ}"


def test_the_outputs_carry_the_rehearsals_hosts(applied: dict[str, Any]) -> None:
    """The values the scripts rely on are the rehearsal's, in the live outputs' shapes."""
    value = {name: entry["value"] for name, entry in applied.items()}
    assert value["k3s_server_private_ip"] == SAMPLE["edge_node_addresses"][0]
    assert value["k3s_api_internal_endpoint"] == "https://10.0.1.10:6443"
    assert value["mongo_uri"] == (
        "mongodb://ca4admin:a%2Fsecret%40with%3Aodd+chars@documentdb.db.svc.cluster.local:27017/"
        "?tls=true&tlsCAFile=global-bundle.pem&retryWrites=false"
    )
    assert value["edge_api_url"] == "https://api.ca4.rehearsal"
    assert value["s3_bucket_url"] == "s3://ca4-archive-rehearsal/"


def test_the_live_types_are_derived_not_assumed(tf: TerraformTree) -> None:
    """The derivation above is itself right on outputs whose types are known for certain."""
    live = live_outputs(tf)
    assert live["edge_node_private_ips"] == (["list", "string"], False)
    assert live["documentdb_port"] == ("number", False)
    assert live["mongo_uri"] == ("string", True)


def test_the_rehearsals_root_is_formatted(tmp_path: Path) -> None:
    """terraform fmt leaves it as it is, like ca4/terraform."""
    result = run(["fmt", "-check", "-recursive", "-diff", str(REHEARSAL_ROOT)], tmp_path, tmp_path)
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}{result.stderr}"
