"""ca4/terraform is laid out like terraform-aws-modules: files, typed and described variables,
described outputs, pinned providers, one tag map, explained checkov skips."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.iac.terraform_model import REPO, ROOT, TF_ROOT, TerraformTree, load_hcl

STANDARD_FILES = ("main.tf", "variables.tf", "outputs.tf", "versions.tf")

# Resource types that take tags, and those that do not; a new type must be put in one.
TAGGABLE = frozenset(
    {
        "aws_acm_certificate",
        "aws_cloudwatch_log_group",
        "aws_default_security_group",
        "aws_docdb_cluster",
        "aws_docdb_cluster_instance",
        "aws_docdb_cluster_parameter_group",
        "aws_docdb_subnet_group",
        "aws_eip",
        "aws_flow_log",
        "aws_iam_instance_profile",
        "aws_iam_role",
        "aws_instance",
        "aws_internet_gateway",
        "aws_kms_key",
        "aws_lb",
        "aws_lb_listener",
        "aws_lb_target_group",
        "aws_nat_gateway",
        "aws_route_table",
        "aws_s3_bucket",
        "aws_security_group",
        "aws_subnet",
        "aws_vpc",
        "aws_vpc_endpoint",
        "aws_vpc_security_group_egress_rule",
        "aws_vpc_security_group_ingress_rule",
        "aws_wafv2_web_acl",
    }
)
UNTAGGABLE = frozenset(
    {
        "aws_iam_role_policy",
        "terraform_data",  # Terraform's own, no provider: nothing to tag
        "aws_kms_alias",
        "aws_lb_target_group_attachment",
        "aws_route",
        "aws_route_table_association",
        "aws_s3_bucket_lifecycle_configuration",
        "aws_s3_bucket_logging",
        "aws_s3_bucket_ownership_controls",
        "aws_s3_bucket_policy",
        "aws_s3_bucket_public_access_block",
        "aws_s3_bucket_server_side_encryption_configuration",
        "aws_s3_bucket_versioning",
        "aws_wafv2_web_acl_association",
        "aws_wafv2_web_acl_logging_configuration",
        "random_id",
        "tls_cert_request",
        "tls_locally_signed_cert",
        "tls_private_key",
        "tls_self_signed_cert",
    }
)

REQUIRED_ROOT_VARIABLES = (
    "aws_region",
    "name_prefix",
    "my_ip_cidr",
    "ssh_key_name",
    "edge_node_instance_type",
    "edge_node_count",
    "db_username",
    "db_password",
    "db_cluster_params",
    "tags",
)

# --- the outputs and who reads them -------------------------------------------------------

SCRIPTS = REPO / "scripts"
# `terraform output -json` as the renderer and script tests see it (tests/k8s); hand-written,
# so the tests below tie it to outputs.tf
OUTPUTS_FIXTURE = REPO / "tests" / "k8s" / "fixtures" / "terraform-outputs.json"
# How scripts/ read an output: render_platform_config.py's need(outputs, "x") and
# outputs.get/[...], ca4_common.sh's $(tf_out x).
_SCRIPT_READS = re.compile(
    r"""need\(\s*outputs\s*,\s*["']([a-z0-9_]+)["']"""
    r"""|outputs(?:\.get\(|\[)\s*["']([a-z0-9_]+)["']"""
    r"""|\$\(\s*tf_out\s+["']?([a-z0-9_]+)\b"""
)


def script_outputs() -> set[str]:
    """Every Terraform output a script under scripts/ reads (comment lines left out)."""
    found: set[str] = set()
    for path in sorted(SCRIPTS.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".sh"):
            code = "\n".join(ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#"))
            for m in _SCRIPT_READS.finditer(code):
                found.add(next(g for g in m.groups() if g))
    return found


def fixture_outputs() -> dict[str, dict[str, object]]:
    """The sample `terraform output -json` of tests/k8s."""
    data: dict[str, dict[str, object]] = json.loads(OUTPUTS_FIXTURE.read_text())
    return data


# Outputs for the operator rather than a script, and where they are used.
OPERATOR_OUTPUTS = {
    "documentdb_endpoint": "the provisioning sequence diagram; connecting a DocumentDB client from a node",
    "documentdb_port": "with documentdb_endpoint",
    "documentdb_uri_options": "building another client's MONGO_URI (the query string DocumentDB needs)",
    "s3_bucket_url": "aws s3 ls of the archive, prefix included",
    "edge_api_ca_certificate_pem": "producers trust it (README: SSL_CERT_FILE), ca4-verify-e2e",
    "edge_api_lb_dns_name": "the CNAME target for api_domain_name",
    "edge_api_lb_zone_id": "a Route 53 alias record for api_domain_name",
}
SCRIPT_OUTPUTS = script_outputs()
FIXTURE_OUTPUTS = fixture_outputs()
# What later targets and the operator read: no rename may break them unnoticed.
REQUIRED_ROOT_OUTPUTS = tuple(sorted(SCRIPT_OUTPUTS | set(FIXTURE_OUTPUTS) | set(OPERATOR_OUTPUTS)))


def test_every_module_has_the_standard_files(tf: TerraformTree) -> None:
    """main.tf, variables.tf, outputs.tf and versions.tf in the root and in every module."""
    missing = [
        f"{module.path.relative_to(REPO)}/{name}"
        for module in tf.modules.values()
        for name in STANDARD_FILES
        if not (module.path / name).is_file()
    ]
    assert not missing, f"expected the four standard files everywhere, missing: {missing}"
    assert len(tf.modules) >= 7, f"expected the root plus at least 6 modules, found {sorted(tf.modules)}"


def test_every_variable_is_typed_and_described(tf: TerraformTree) -> None:
    """No untyped or undocumented input anywhere."""
    bad = [
        f"{v.module}: variable {v.name} (type={v.body.get('type')!r}, "
        f"description={v.body.get('description')!r})"
        for v in tf.blocks("variable")
        if not v.body.get("type") or len(str(v.body.get("description", "")).strip()) < 10
    ]
    assert not bad, "expected a type and a description (10+ characters) on every variable:\n" + "\n".join(bad)


def test_every_output_is_described(tf: TerraformTree) -> None:
    """Outputs say what they are for."""
    bad = [
        f"{o.module}: output {o.name}"
        for o in tf.blocks("output")
        if len(str(o.body.get("description", "")).strip()) < 10
    ]
    assert not bad, "expected a description (10+ characters) on every output: " + ", ".join(bad)


def test_module_variables_are_all_used(tf: TerraformTree) -> None:
    """A module variable nobody reads is a wiring mistake waiting to happen."""
    unused = []
    for module in tf.modules.values():
        text = "\n".join(p.read_text() for p in module.path.glob("*.tf") if p.name != "variables.tf")
        unused += [
            f"{module.name}: var.{v.name}"
            for v in tf.blocks("variable", module=module.name)
            if not re.search(rf"\bvar\.{v.name}\b", text)
        ]
    assert not unused, f"expected every declared variable to be used, unused: {unused}"


def test_module_calls_pass_only_declared_variables(tf: TerraformTree) -> None:
    """A root ``module`` block passes only variables of that module, and every required one."""
    meta = {"source", "version", "providers", "depends_on", "count", "for_each"}
    problems = []
    for name, call in tf.module_calls.items():
        declared = {v.name: v for v in tf.blocks("variable", module=name)}
        passed = set(call.body) - meta
        problems += [f"module {name}: passes unknown variable {p}" for p in sorted(passed - set(declared))]
        problems += [
            f"module {name}: required variable {v} is not passed"
            for v, block in declared.items()
            if "default" not in block.body and v not in passed
        ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", REQUIRED_ROOT_VARIABLES)
def test_required_root_variable(tf: TerraformTree, name: str) -> None:
    """The issue's variables exist at the root."""
    variable = tf.variable(ROOT, name)
    assert variable.body.get("type"), f"root variable {name}: expected a type, found none"


def test_preflight_requires_exactly_the_variables_without_default(tf: TerraformTree) -> None:
    """preflight.sh's REQUIRED_VARIABLES and the contract's ca4-plan row name the root variables
    that have no default, no more and no less."""
    required = sorted(v.name for v in tf.blocks("variable", module=ROOT) if "default" not in v.body)
    m = re.search(r"^REQUIRED_VARIABLES=\(([^)]*)\)", (TF_ROOT / "preflight.sh").read_text(), re.MULTILINE)
    assert m, "preflight.sh: expected a REQUIRED_VARIABLES=(...) array"
    assert sorted(m.group(1).split()) == required, (
        f"preflight.sh REQUIRED_VARIABLES: expected {required}, found {sorted(m.group(1).split())}"
    )
    contract = (REPO / "ca4" / "MAKEFILE-CONTRACT.md").read_text()
    plan = contract[contract.index("### `ca4-plan`") : contract.index("### `ca4-apply`")]
    row = re.search(
        r"^\| Needs \|.*?values for (.*?) in `ca4/terraform/terraform\.tfvars`", plan, re.MULTILINE
    )
    assert row, (
        "MAKEFILE-CONTRACT.md ca4-plan: expected "
        "'values for `a`, `b` ... in `ca4/terraform/terraform.tfvars`'"
    )
    assert sorted(re.findall(r"`([a-z0-9_]+)`", row.group(1))) == required, (
        f"MAKEFILE-CONTRACT.md ca4-plan Needs: expected {required}, found {row.group(1)!r}"
    )


def test_account_global_names_carry_the_region(tf: TerraformTree) -> None:
    """IAM names are global to the account while the stack is regional: the same name_prefix
    in two regions must not collide (as the bucket names, which carry the region, do not)."""
    global_types = (
        "aws_iam_role",
        "aws_iam_instance_profile",
        "aws_iam_policy",
        "aws_iam_user",
        "aws_iam_group",
    )
    named = [r for t in global_types for r in tf.resources(t)]
    assert named, "expected the edge nodes' IAM role and instance profile"
    bad = []
    for resource in named:
        name = str(tf.evaluate(resource.module, resource.body.get("name", "")))
        if "${var.region}" not in name or "${var.name}" not in name:
            bad.append(f"{resource.address}: name {name!r}")
        elif tf.to_root(resource.module, "${var.region}") != "${var.aws_region}":
            bad.append(f"{resource.address}: var.region is not wired to var.aws_region")
    assert not bad, "expected ${var.name} and ${var.region} in every account-global name:\n" + "\n".join(bad)
    buckets = [str(b.body["bucket"]) for b in tf.resources("aws_s3_bucket")]
    assert all("${var.region}" in b and "${var.account_id}" in b for b in buckets), buckets


def test_db_password_is_sensitive_without_default(tf: TerraformTree) -> None:
    """The password is only ever supplied by the operator, and Terraform masks it."""
    password = tf.variable(ROOT, "db_password").body
    assert password.get("sensitive") is True, (
        f"db_password: expected sensitive = true, found {password.get('sensitive')!r}"
    )
    assert "default" not in password, f"db_password: expected no default, found {password.get('default')!r}"


def test_name_prefix_defaults_to_ca4_and_tags_carry_it(tf: TerraformTree) -> None:
    """Every resource carries the ca4 prefix and tags (DESIGN: CA4 is isolated)."""
    assert tf.variable(ROOT, "name_prefix").body.get("default") == "ca4"
    tags = tf.modules[ROOT].locals.get("tags", "")
    for needle in ('Project = "ca4"', "Stack = var.name_prefix"):
        assert needle in re.sub(r"\s+", " ", str(tags)), f"local.tags: expected {needle!r}, found {tags!r}"


@pytest.mark.parametrize("name", REQUIRED_ROOT_OUTPUTS)
def test_required_root_output(tf: TerraformTree, name: str) -> None:
    """The outputs later targets render configuration from (scripts/, the tests/k8s sample) and
    those the operator uses."""
    output = tf.output(ROOT, name)
    assert output.body.get("value"), f"output {name}: expected a value"


def test_the_script_outputs_are_found_and_in_the_k8s_sample() -> None:
    """The scan of scripts/ still sees how they read outputs, and the renderer's tests feed
    every output a script reads."""
    core = {"bastion_public_ip", "edge_node_private_ips", "mongo_uri", "edge_api_url", "s3_bucket_name"}
    assert core <= SCRIPT_OUTPUTS, (
        f"scripts/: expected to find reads of {sorted(core - SCRIPT_OUTPUTS)} (did the way scripts read "
        f"outputs change? update _SCRIPT_READS); found {sorted(SCRIPT_OUTPUTS)}"
    )
    missing = sorted(SCRIPT_OUTPUTS - set(FIXTURE_OUTPUTS))
    assert not missing, f"{OUTPUTS_FIXTURE.relative_to(REPO)}: lacks outputs scripts/ read: {missing}"


def test_the_k8s_sample_outputs_match_outputs_tf(tf: TerraformTree) -> None:
    """tests/k8s's sample holds only real outputs, each as sensitive as Terraform marks it."""
    declared = {o.name: o for o in tf.blocks("output", module=ROOT)}
    unknown = sorted(set(FIXTURE_OUTPUTS) - set(declared))
    assert not unknown, f"{OUTPUTS_FIXTURE.relative_to(REPO)}: outputs that outputs.tf lacks: {unknown}"
    wrong = [
        f"{name}: sample sensitive={entry.get('sensitive')!r}, "
        f"outputs.tf sensitive={declared[name].body.get('sensitive')!r}"
        for name, entry in FIXTURE_OUTPUTS.items()
        if bool(entry.get("sensitive")) != (declared[name].body.get("sensitive") is True)
    ]
    assert not wrong, "sensitivity differs:\n" + "\n".join(wrong)


def test_every_root_output_has_a_reader(tf: TerraformTree) -> None:
    """No dead output: each is read by a script, in the sample, or listed for the operator."""
    readers = SCRIPT_OUTPUTS | set(FIXTURE_OUTPUTS) | set(OPERATOR_OUTPUTS)
    dead = sorted(o.name for o in tf.blocks("output", module=ROOT) if o.name not in readers)
    assert not dead, (
        f"root outputs nothing reads: {dead} (delete them, or add them to OPERATOR_OUTPUTS with their use)"
    )


def test_every_module_output_is_used_by_the_root(tf: TerraformTree) -> None:
    """The mirror of test_module_variables_are_all_used: a module output the root never reads
    is dead code."""
    text = "\n".join(p.read_text() for p in TF_ROOT.glob("*.tf"))
    unused = [
        f"module.{o.module}.{o.name}"
        for o in tf.blocks("output")
        if o.module != ROOT and not re.search(rf"\bmodule\.{o.module}\.{o.name}\b", text)
    ]
    assert not unused, f"expected every module output to be read by the root module, unused: {unused}"


def test_outputs_holding_secrets_are_sensitive(tf: TerraformTree) -> None:
    """An output built from the password must be marked sensitive."""
    leaking = [
        o.name
        for o in tf.blocks("output", module=ROOT)
        if "var.db_password" in str(o.body.get("value")) and o.body.get("sensitive") is not True
    ]
    assert not leaking, f"expected sensitive = true on outputs that contain db_password: {leaking}"
    assert tf.output(ROOT, "mongo_uri").body.get("sensitive") is True


def test_mongo_uri_has_the_documentdb_options(tf: TerraformTree) -> None:
    """The worker's MONGO_URI works against DocumentDB as the services expect."""
    options = tf.modules[ROOT].locals["documentdb_uri_options"]
    expected = (
        "tls=true&tlsCAFile=global-bundle.pem&replicaSet=rs0"
        "&readPreference=secondaryPreferred&retryWrites=false"
    )
    assert options == expected, f"local.documentdb_uri_options: expected {expected!r}, found {options!r}"
    uri = tf.output(ROOT, "mongo_uri").body["value"]
    assert "${local.documentdb_uri_options}" in uri and uri.startswith("mongodb://"), (
        f"mongo_uri: found {uri!r}"
    )


def test_edge_api_url_is_https(tf: TerraformTree) -> None:
    """Producers reach the API over HTTPS only."""
    _, url = tf.module_output(tf.output(ROOT, "edge_api_url").body["value"])
    assert url.startswith("https://"), f"module edge_api output url: expected https://..., found {url!r}"


def test_providers_are_pinned(tf: TerraformTree) -> None:
    """The root pins Terraform and every provider; modules state what they need."""
    terraform = load_hcl(TF_ROOT / "versions.tf")["terraform"][0]
    assert ">=" in terraform.get("required_version", ""), f"expected a required_version, found {terraform}"
    providers = terraform["required_providers"][0]
    for name in ("aws", "random", "tls"):
        spec = providers.get(name)
        assert spec, f"versions.tf: expected provider {name} in required_providers, found {sorted(providers)}"
        assert spec.get("source") == f"hashicorp/{name}", (
            f"versions.tf: provider {name}: source {spec.get('source')!r}"
        )
        version = str(spec.get("version"))
        assert "~>" in version, f"versions.tf: provider {name}: expected a ~> pin, found {version!r}"
    for module in tf.modules.values():
        text = (module.path / "versions.tf").read_text()
        assert "required_providers" in text and "hashicorp/aws" in text, (
            f"{module.path}/versions.tf: expected aws"
        )


def test_every_taggable_resource_merges_the_tag_map(tf: TerraformTree) -> None:
    """Tags come from one map (the root's local.tags) merged into every resource that has tags."""
    unknown = sorted({r.type for r in tf.resources()} - TAGGABLE - UNTAGGABLE)
    assert not unknown, f"classify these resource types as TAGGABLE or UNTAGGABLE in this test: {unknown}"
    untagged = [
        r.address
        for r in tf.resources()
        if r.type in TAGGABLE and "var.tags" not in str(r.body.get("tags", ""))
    ]
    assert not untagged, f"expected tags = merge(var.tags, ...) on: {untagged}"
    calls_without_tags = [
        name for name, call in tf.module_calls.items() if call.body.get("tags") != "${local.tags}"
    ]
    assert not calls_without_tags, f"expected tags = local.tags in module calls: {calls_without_tags}"


def test_every_checkov_skip_gives_a_reason() -> None:
    """A skip without a reason is a silenced finding."""
    skip = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")
    found, bad = 0, []
    for path in sorted(TF_ROOT.rglob("*.tf")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if m := skip.search(line):
                found += 1
                if not re.fullmatch(r"CKV2?_AWS_\d+", m.group(1)) or len((m.group(2) or "").strip()) < 30:
                    bad.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert found, "expected the inline checkov skips to be found (did the comment syntax change?)"
    assert not bad, "expected #checkov:skip=CKV_AWS_<n>:<reason of 30+ characters>:\n" + "\n".join(bad)


def test_tfvars_example_sets_only_declared_variables_and_no_password(tf: TerraformTree) -> None:
    """The example is a valid starting point and never carries a secret."""
    example = load_hcl(TF_ROOT / "terraform.tfvars.example")
    declared = {v.name for v in tf.blocks("variable", module=ROOT)}
    assigned = {k for k in example if not k.startswith("__")}
    assert assigned <= declared, (
        f"terraform.tfvars.example assigns undeclared variables: {sorted(assigned - declared)}"
    )
    assert "db_password" not in assigned, "terraform.tfvars.example must not assign db_password"
    required = {v.name for v in tf.blocks("variable", module=ROOT) if "default" not in v.body} - {
        "db_password"
    }
    assert required <= assigned, (
        f"terraform.tfvars.example: expected values for {sorted(required - assigned)}"
    )


@pytest.mark.parametrize(
    "path",
    [
        "terraform.tfvars",
        "terraform.tfstate",
        "terraform.tfstate.backup",
        "ca4.tfplan",
        "ca4.tfplan.json",
        ".terraform/providers/x",
        "secrets.auto.tfvars",
    ],
)
def test_secrets_and_working_files_are_gitignored(path: str) -> None:
    """State, plans and variable files hold secrets: git must never pick them up."""
    target = Path("ca4/terraform") / path
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", str(target)], cwd=REPO, check=False, capture_output=True
    )
    assert result.returncode == 0, (
        f"expected git to ignore {target}, git check-ignore answered {result.returncode}"
    )


def test_lock_file_and_example_are_not_ignored() -> None:
    """The provider lock file and the example belong in git."""
    for path in ("ca4/terraform/.terraform.lock.hcl", "ca4/terraform/terraform.tfvars.example"):
        result = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO, check=False)
        assert result.returncode == 1, f"expected {path} to be committable, but git ignores it"


def test_the_lock_file_is_described_truthfully() -> None:
    """versions.tf may say the lock file is committed only when it is; otherwise it and the
    README say how the first plan writes it and that the user commits it."""
    versions = (TF_ROOT / "versions.tf").read_text()
    readme = (TF_ROOT / "README.md").read_text()
    if not (TF_ROOT / ".terraform.lock.hcl").exists():
        assert "which is committed" not in versions, "versions.tf claims a lock file the repository lacks"
        for text, where in ((versions, "versions.tf"), (readme, "ca4/terraform/README.md")):
            assert "terraform init" in text and "commit" in text.lower(), (
                f"{where} does not say that the first plan's init writes .terraform.lock.hcl to commit"
            )
