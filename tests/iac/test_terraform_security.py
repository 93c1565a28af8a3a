"""The security model of DESIGN.md, checked in the HCL where checkov does not look:
who may reach what, DocumentDB's placement and TLS, the buckets, the instances."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.iac.terraform_model import ROOT, Block, TerraformTree, is_var

WORLD = {"0.0.0.0/0", "::/0"}
INGRESS = "aws_vpc_security_group_ingress_rule"
EGRESS = "aws_vpc_security_group_egress_rule"


def sg_name(expression: str) -> str:
    """``${aws_security_group.nodes.id}`` -> ``nodes``."""
    m = re.fullmatch(r"\$\{aws_security_group\.([a-z_]+)\.id\}", expression or "")
    assert m, f"expected a reference to a security group of module security, found {expression!r}"
    return m.group(1)


def rule_instances(tf: TerraformTree, type_: str) -> list[dict[str, Any]]:
    """Every instance of the security module's rules, with for_each and variables resolved."""
    rules = []
    for block in tf.resources(type_, module="security"):
        for each, body in tf.expand(block):
            rules.append(
                {
                    "address": block.address + (f'["{each[0]}"]' if each else ""),
                    "group": sg_name(body["security_group_id"]),
                    "protocol": str(tf.evaluate("security", body.get("ip_protocol"), each)),
                    "from": int(tf.evaluate("security", body.get("from_port", -1), each)),
                    "to": int(tf.evaluate("security", body.get("to_port", -1), each)),
                    "cidr": tf.evaluate("security", body.get("cidr_ipv4"), each),
                    "cidr6": tf.evaluate("security", body.get("cidr_ipv6"), each),
                    "source_group": sg_name(body["referenced_security_group_id"])
                    if "referenced_security_group_id" in body
                    else None,
                    "raw_cidr": body.get("cidr_ipv4"),
                    "description": tf.evaluate("security", body.get("description"), each),
                }
            )
    return rules


def opens(rule: dict[str, Any], port: int) -> bool:
    """True when the rule lets ``port`` through."""
    return rule["protocol"] == "-1" or rule["from"] <= port <= rule["to"]


@pytest.fixture(scope="module")
def ingress(tf: TerraformTree) -> list[dict[str, Any]]:
    """Every ingress rule instance."""
    return rule_instances(tf, INGRESS)


@pytest.fixture(scope="module")
def egress(tf: TerraformTree) -> list[dict[str, Any]]:
    """Every egress rule instance."""
    return rule_instances(tf, EGRESS)


# --- security groups ----------------------------------------------------------------------


def test_rules_are_separate_resources_only(tf: TerraformTree) -> None:
    """Inline ingress/egress blocks and legacy aws_security_group_rule would escape these tests."""
    inline = [
        g.address for g in tf.resources("aws_security_group") if "ingress" in g.body or "egress" in g.body
    ]
    legacy = [r.address for r in tf.resources("aws_security_group_rule")]
    assert not inline and not legacy, f"expected only aws_vpc_security_group_*_rule, found {inline + legacy}"
    elsewhere = [r.address for t in (INGRESS, EGRESS) for r in tf.resources(t) if r.module != "security"]
    assert not elsewhere, f"expected every rule in module security, found {elsewhere}"


def test_every_group_and_rule_is_described(tf: TerraformTree) -> None:
    """A rule without a description cannot be reviewed."""
    bad = [
        r.address
        for t in ("aws_security_group", INGRESS, EGRESS)
        for r in tf.resources(t)
        if len(str(r.body.get("description", "")).strip()) < 10
    ]
    assert not bad, f"expected a description on every security group and rule: {bad}"


def test_descriptions_use_only_characters_ec2_accepts(
    tf: TerraformTree, ingress: list[dict[str, Any]], egress: list[dict[str, Any]]
) -> None:
    """EC2 refuses security group and rule descriptions with other characters (an apostrophe fails apply)."""
    allowed = re.compile(r"[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{1,255}")
    texts = [(g.address, g.body.get("description", "")) for g in tf.resources("aws_security_group")]
    texts += [(r["address"], r["description"]) for r in ingress + egress]
    bad = [f"{address}: {text!r}" for address, text in texts if not allowed.fullmatch(str(text))]
    assert not bad, (
        "expected descriptions EC2 accepts (a-z A-Z 0-9 space ._-:/()#,@[]+=&;{}!$*):\n" + "\n".join(bad)
    )


def test_ssh_only_from_my_ip_to_the_bastion_and_from_the_bastion_to_the_nodes(
    tf: TerraformTree, ingress: list[dict[str, Any]]
) -> None:
    """Port 22: var.my_ip_cidr -> bastion, bastion -> nodes, nothing else."""
    ssh = [r for r in ingress if opens(r, 22)]
    found = sorted((r["group"], r["source_group"] or tf.to_root("security", r["raw_cidr"])) for r in ssh)
    expected = [("bastion", "${var.my_ip_cidr}"), ("nodes", "bastion")]
    assert found == expected, (
        f"SSH ingress: expected {expected}, found {found} in {[r['address'] for r in ssh]}"
    )


def test_my_ip_cidr_cannot_be_the_world(tf: TerraformTree) -> None:
    """The root variable has no default and its validation refuses anything wider than /16."""
    variable = tf.variable(ROOT, "my_ip_cidr").body
    assert "default" not in variable, f"my_ip_cidr: expected no default, found {variable.get('default')!r}"
    conditions = " ".join(v["condition"] for v in variable.get("validation", []))
    assert ">= 16" in conditions, (
        f"my_ip_cidr: expected a validation of the prefix length, found {conditions!r}"
    )


def test_no_world_ingress_except_https_to_the_api_load_balancer(ingress: list[dict[str, Any]]) -> None:
    """0.0.0.0/0 (or ::/0, or a variable defaulting to it) only on the load balancer's 443."""
    world = [r for r in ingress if {r["cidr"], r["cidr6"]} & WORLD]
    offending = [
        r["address"]
        for r in world
        if not (r["group"] == "lb" and r["protocol"] == "tcp" and r["from"] == r["to"] == 443)
    ]
    assert not offending, (
        f"expected no ingress from the internet except tcp/443 to the load balancer: {offending}"
    )
    assert world, "expected the API's public entry (tcp/443 from api_ingress_cidrs, 0.0.0.0/0 by default)"


def test_nodes_accept_only_bastion_load_balancer_and_each_other(
    tf: TerraformTree, ingress: list[dict[str, Any]]
) -> None:
    """Nodes: SSH and 6443 from the bastion, the API port from the load balancer, K3s ports between nodes."""
    api_port = tf.root_default("${var.api_node_port}")
    found = sorted(
        (r["source_group"] or f"cidr {r['cidr']}", r["protocol"], r["from"], r["to"])
        for r in ingress
        if r["group"] == "nodes"
    )
    expected = sorted(
        [
            ("bastion", "tcp", 22, 22),
            ("bastion", "tcp", 6443, 6443),
            ("lb", "tcp", api_port, api_port),
            ("nodes", "tcp", 6443, 6443),
            ("nodes", "tcp", 10250, 10250),
            ("nodes", "udp", 8472, 8472),
        ]
    )
    assert found == expected, f"edge node ingress: expected {expected}, found {found}"


def test_documentdb_accepts_27017_from_the_nodes_only(
    ingress: list[dict[str, Any]], egress: list[dict[str, Any]]
) -> None:
    """The database answers the K3s nodes and nothing else, and opens no connection itself."""
    found = [
        (r["source_group"], r["cidr"], r["protocol"], r["from"], r["to"])
        for r in ingress
        if r["group"] == "db"
    ]
    assert found == [("nodes", None, "tcp", 27017, 27017)], (
        f"DocumentDB ingress: expected 27017 from nodes, found {found}"
    )
    db_egress = [r["address"] for r in egress if r["group"] == "db"]
    assert not db_egress, f"DocumentDB: expected no egress rule, found {db_egress}"


WORLD_EGRESS_PORTS = {("tcp", 80, 80), ("tcp", 443, 443)}


def test_no_egress_opens_every_protocol_to_the_world(egress: list[dict[str, Any]]) -> None:
    """Egress to the internet is per port (80/443), never protocol -1 or a port range."""
    wide = [r["address"] for r in egress if r["protocol"] == "-1"]
    assert not wide, f"expected no all-protocol egress, found {wide}"
    world = [r for r in egress if {r["cidr"], r["cidr6"]} & WORLD]
    assert world, "expected the HTTP(S) egress of the bastion and the nodes (package mirrors, registries)"
    other = [
        (r["address"], r["protocol"], r["from"], r["to"])
        for r in world
        if (r["protocol"], r["from"], r["to"]) not in WORLD_EGRESS_PORTS
    ]
    assert not other, f"expected egress to the internet only on tcp/80 and tcp/443, found {other}"


def test_the_api_port_on_the_nodes_is_https_443_by_default(tf: TerraformTree) -> None:
    """The load balancer re-encrypts to the nodes (Traefik websecure)."""
    assert tf.root_default("${var.api_node_port}") == 443
    target_group = tf.resource("edge_api", "aws_lb_target_group", "this").body
    assert target_group["protocol"] == "HTTPS", (
        f"target group: expected HTTPS, found {target_group['protocol']!r}"
    )
    assert target_group["health_check"][0]["protocol"] == "HTTPS"


# --- the public entry ---------------------------------------------------------------------


def test_the_api_is_served_only_over_tls_on_443(tf: TerraformTree) -> None:
    """One listener, HTTPS on 443, TLS 1.2+ only; the load balancer drops malformed headers."""
    listeners = tf.resources("aws_lb_listener")
    summary = [
        (li.address, li.body.get("port"), li.body.get("protocol"), li.body.get("ssl_policy"))
        for li in listeners
    ]
    assert len(listeners) == 1, f"expected exactly one listener, found {summary}"
    listener = listeners[0].body
    assert listener["port"] == 443 and listener["protocol"] == "HTTPS", f"listener: found {summary}"
    assert re.match(r"ELBSecurityPolicy-TLS13-1-[23]-", listener["ssl_policy"]), (
        f"listener: weak TLS policy {summary}"
    )
    lb = tf.resource("edge_api", "aws_lb", "this").body
    assert lb["internal"] is False and lb["drop_invalid_header_fields"] is True, f"aws_lb.this: found {lb}"
    assert tf.to_root("edge_api", lb["subnets"]) == "${module.network.public_subnet_ids}"


def test_the_api_has_a_waf_that_redacts_tokens(tf: TerraformTree) -> None:
    """Rate limit and managed rules in front of the API; bearer tokens never reach the WAF logs."""
    acl = tf.resource("edge_api", "aws_wafv2_web_acl", "this").body
    names = {r["name"] for r in acl["rule"]}
    assert {"rate-limit-per-ip", "aws-known-bad-inputs"} <= names, f"WAF rules: found {sorted(names)}"
    logging = tf.resource("edge_api", "aws_wafv2_web_acl_logging_configuration", "this").body
    redacted = logging["redacted_fields"][0]["single_header"][0]["name"]
    assert redacted == "authorization", (
        f"WAF logging: expected the authorization header redacted, found {redacted!r}"
    )
    association = tf.resource("edge_api", "aws_wafv2_web_acl_association", "this").body
    assert association == {
        "resource_arn": "${aws_lb.this.arn}",
        "web_acl_arn": "${aws_wafv2_web_acl.this.arn}",
    }, f"WAF: expected the web ACL associated with the API load balancer, found {association}"


# --- DocumentDB ---------------------------------------------------------------------------


def test_documentdb_lives_in_the_private_subnets(tf: TerraformTree) -> None:
    """Subnet group <- module input <- network.private_subnet_ids <- aws_subnet.private, behind NAT."""
    group = tf.resource("documentdb", "aws_docdb_subnet_group", "this").body
    wired = tf.to_root("documentdb", group["subnet_ids"])
    assert wired == "${module.network.private_subnet_ids}", (
        f"DocumentDB subnet group: subnets come from {wired!r}"
    )
    module, value = tf.module_output(wired)
    assert (module, value) == ("network", "${aws_subnet.private[*].id}"), f"{wired}: found {value!r}"
    private = tf.resource("network", "aws_subnet", "private").body
    assert private["map_public_ip_on_launch"] is False, "aws_subnet.private: expected no public IPs"
    routes = [
        r
        for r in tf.resources("aws_route", module="network")
        if "aws_route_table.private" in r.body["route_table_id"]
    ]
    assert routes and all("nat_gateway_id" in r.body and "gateway_id" not in r.body for r in routes), (
        f"private route tables must reach the internet through NAT only, found {[r.body for r in routes]}"
    )


STRICT_DOCUMENTDB_TLS = {"tls1.2+", "tls1.3+", "fips-140-3"}  # "enabled" also accepts TLS 1.0 and 1.1


def test_documentdb_requires_tls(tf: TerraformTree) -> None:
    """Parameter group docdb5.0 with tls=tls1.2+ by default, on a 5.0.0 cluster; tls can be
    tightened (tls1.3+, fips-140-3) but neither disabled nor loosened to "enabled" (TLS 1.0+)."""
    group = tf.resource("documentdb", "aws_docdb_cluster_parameter_group", "this").body
    assert group["family"] == "docdb5.0", (
        f"parameter group: expected family docdb5.0, found {group['family']!r}"
    )
    tls = [p for p in group.get("parameter", []) if p["name"] == "tls"]
    assert len(tls) == 1, f"parameter group: expected one tls parameter, found {group.get('parameter')}"
    m = re.fullmatch(r'\$\{lookup\(var\.cluster_parameters, "tls", "([^"]+)"\)\}|([^$]+)', tls[0]["value"])
    default = m and (m.group(1) or m.group(2))
    assert default in STRICT_DOCUMENTDB_TLS, (
        f"tls parameter: expected TLS 1.2 or newer by default ({sorted(STRICT_DOCUMENTDB_TLS)}), "
        f"found {tls[0]['value']!r}"
    )
    conditions = [v["condition"] for v in tf.variable(ROOT, "db_cluster_params").body["validation"]]
    tls_rules = [c for c in conditions if '"tls"' in c]
    allowed = [
        set(re.findall(r'"([^"]+)"', m.group(1)))
        for c in tls_rules
        if (m := re.search(r'contains\(\[([^\]]*)\], lookup\(var\.db_cluster_params, "tls"', c))
    ]
    assert allowed and allowed[0] <= STRICT_DOCUMENTDB_TLS, (
        f"db_cluster_params: expected a validation allowing only {sorted(STRICT_DOCUMENTDB_TLS)} for tls "
        f"(never disabled or enabled), found {tls_rules}"
    )
    assert f'"tls", "{default}")' in tls_rules[0], (
        f"db_cluster_params: the validation's tls default differs from the module's {default!r}: {tls_rules}"
    )
    cluster = tf.resource("documentdb", "aws_docdb_cluster", "this").body
    assert cluster["engine_version"] == "5.0.0", (
        f"cluster: expected engine 5.0.0, found {cluster['engine_version']!r}"
    )
    assert cluster["db_cluster_parameter_group_name"] == "${aws_docdb_cluster_parameter_group.this.name}"


def test_documentdb_protection_encryption_and_backups(tf: TerraformTree) -> None:
    """Deletion protection wired to a root variable defaulting to true; encrypted; 7+ days of backups."""
    cluster = tf.resource("documentdb", "aws_docdb_cluster", "this").body
    protection = tf.to_root("documentdb", cluster["deletion_protection"])
    assert is_var(protection, "deletion_protection"), f"deletion_protection is wired to {protection!r}"
    assert tf.root_default(protection) is True, "root variable deletion_protection: expected default true"
    assert cluster["storage_encrypted"] is True and "kms_key_id" in cluster, (
        "cluster: expected KMS-encrypted storage"
    )
    retention = tf.evaluate("documentdb", cluster["backup_retention_period"])
    assert isinstance(retention, int) and retention >= 7, (
        f"backup retention: expected >= 7 days, found {retention!r}"
    )
    conditions = " ".join(
        v["condition"] for v in tf.variable(ROOT, "db_backup_retention_days").body["validation"]
    )
    assert ">= 7" in conditions, (
        f"db_backup_retention_days: expected a validation of >= 7, found {conditions!r}"
    )


def test_documentdb_final_snapshot_name_is_unique_per_cluster(tf: TerraformTree) -> None:
    """Destroy twice works: the final snapshot name carries a random suffix created with the cluster."""
    cluster = tf.resource("documentdb", "aws_docdb_cluster", "this").body
    assert cluster["skip_final_snapshot"] is False, "cluster: expected a final snapshot on destroy"
    assert "random_id.final_snapshot" in cluster["final_snapshot_identifier"], (
        f"final_snapshot_identifier: expected a random suffix, found {cluster['final_snapshot_identifier']!r}"
    )
    tf.resource("documentdb", "random_id", "final_snapshot")


# --- S3 -----------------------------------------------------------------------------------


def bucket_companion(tf: TerraformTree, bucket: Block, type_: str) -> dict[str, Any]:
    """The configuration resource of ``type_`` attached to ``bucket`` (same module)."""
    ref = f"${{aws_s3_bucket.{bucket.name}.id}}"
    found = [r.body for r in tf.resources(type_, module=bucket.module) if r.body.get("bucket") == ref]
    assert len(found) == 1, f"{bucket.address}: expected one {type_}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def buckets(tf: TerraformTree) -> list[Block]:
    """Every bucket of the stack."""
    found = tf.resources("aws_s3_bucket")
    assert {b.module for b in found} == {"archive", "logs"}, (
        f"expected the archive and logs buckets, found {found}"
    )
    return found


def test_every_bucket_blocks_public_access(tf: TerraformTree, buckets: list[Block]) -> None:
    """All four public access block settings on every bucket."""
    for bucket in buckets:
        block = bucket_companion(tf, bucket, "aws_s3_bucket_public_access_block")
        settings = (
            "block_public_acls",
            "block_public_policy",
            "ignore_public_acls",
            "restrict_public_buckets",
        )
        off = [s for s in settings if block.get(s) is not True]
        assert not off, f"{bucket.address}: expected all four public access blocks true, not set: {off}"


def test_every_bucket_is_encrypted_versioned_owner_enforced_and_tls_only(
    tf: TerraformTree, buckets: list[Block]
) -> None:
    """SSE, versioning, BucketOwnerEnforced and a policy denying plain HTTP on every bucket."""
    for bucket in buckets:
        sse = bucket_companion(tf, bucket, "aws_s3_bucket_server_side_encryption_configuration")
        algorithm = sse["rule"][0]["apply_server_side_encryption_by_default"][0]["sse_algorithm"]
        assert algorithm in ("aws:kms", "AES256"), f"{bucket.address}: SSE {algorithm!r}"
        versioning = bucket_companion(tf, bucket, "aws_s3_bucket_versioning")
        assert versioning["versioning_configuration"][0]["status"] == "Enabled", (
            f"{bucket.address}: versioning"
        )
        ownership = bucket_companion(tf, bucket, "aws_s3_bucket_ownership_controls")
        assert ownership["rule"][0]["object_ownership"] == "BucketOwnerEnforced", (
            f"{bucket.address}: ownership"
        )
        policy = bucket_companion(tf, bucket, "aws_s3_bucket_policy")
        assert policy["policy"] == "${data.aws_iam_policy_document.this.json}", f"{bucket.address}: policy"
        document = tf.data(bucket.module, "aws_iam_policy_document", "this")
        tls_only = [
            s
            for s in document.body["statement"]
            if s.get("effect") == "Deny"
            and any(
                c["variable"] == "aws:SecureTransport" and c["values"] == ["false"]
                for c in s.get("condition", [])
            )
        ]
        assert tls_only, f"{bucket.address}: expected a Deny on aws:SecureTransport = false in its policy"


def test_archive_is_kms_encrypted_and_ages_raw_and_enriched(tf: TerraformTree) -> None:
    """The archive: SSE-KMS with the stack key, a lifecycle rule per prefix the worker writes."""
    bucket = tf.resource("archive", "aws_s3_bucket", "this")
    sse = bucket_companion(tf, bucket, "aws_s3_bucket_server_side_encryption_configuration")
    assert sse["rule"][0]["apply_server_side_encryption_by_default"][0]["sse_algorithm"] == "aws:kms"
    lifecycle = bucket_companion(tf, bucket, "aws_s3_bucket_lifecycle_configuration")
    rules = tf.nested_blocks("archive", lifecycle, "rule")  # static and dynamic "rule" blocks
    prefixes = {r["filter"][0].get("prefix") for r in rules}
    expected = {"${var.prefix}raw/", "${var.prefix}enriched/"}
    assert expected <= prefixes, f"archive lifecycle: expected rules for {expected}, found {prefixes}"
    assert all("expiration" in r for r in rules), "archive lifecycle: every rule needs an expiration"
    # every prefix the node role may write (key_prefixes, from local.kinds) ages out on its own days
    kinds = tf.modules["archive"].locals["kinds"]
    assert tf.modules["archive"].locals["key_prefixes"] == '${[for k in local.kinds : "${var.prefix}${k}/"]}'
    by_prefix = {r["filter"][0].get("prefix"): r for r in rules}
    per_kind = {f"${{var.prefix}}{kind}/" for kind in kinds}
    assert {prefix for prefix in by_prefix if prefix} == per_kind, (
        f"archive lifecycle: expected one prefixed rule per kind {sorted(per_kind)}, "
        f"found {sorted(by_prefix, key=str)}"
    )
    for kind in kinds:
        rule = by_prefix.get(f"${{var.prefix}}{kind}/")
        assert rule, (
            f"archive lifecycle: no rule for the writable prefix {kind}/, found {sorted(by_prefix, key=str)}"
        )
        settings = f'var.lifecycle_rules["{kind}"]'
        days = [t["days"] for t in rule["transition"]] + [rule["expiration"][0]["days"]]
        assert all(settings in str(d) for d in days), (
            f"archive lifecycle {kind}: expected its days from {settings}, found {days}"
        )


def test_archive_kinds_are_one_list(tf: TerraformTree) -> None:
    """The archive's kinds (IAM prefixes, lifecycle rules) and the root's archive_lifecycle keys agree."""
    kinds = tf.modules["archive"].locals["kinds"]
    lifecycle = tf.variable(ROOT, "archive_lifecycle").body
    assert set(lifecycle["default"]) == set(kinds), (
        f"archive_lifecycle default keys {sorted(lifecycle['default'])} != archive kinds {kinds}"
    )
    keyed = [
        set(re.findall(r'"([^"]+)"', m.group(1)))
        for v in lifecycle["validation"]
        if (m := re.search(r"keys\(var\.archive_lifecycle\)\) == toset\(\[([^\]]*)\]\)", v["condition"]))
    ]
    assert keyed == [set(kinds)], f"archive_lifecycle: expected a validation of exactly the keys {kinds}"
    assert tf.module_calls["archive"].body["lifecycle_rules"] == "${var.archive_lifecycle}"


# --- log delivery -------------------------------------------------------------------------


def statement(tf: TerraformTree, module: str, document: str, sid: str) -> dict[str, Any]:
    """One statement of a policy document, by Sid."""
    statements = {
        s.get("sid"): s for s in tf.data(module, "aws_iam_policy_document", document).body["statement"]
    }
    assert sid in statements, (
        f"module {module} policy {document}: no statement {sid}, found {sorted(statements)}"
    )
    return statements[sid]


def conditions(stmt: dict[str, Any]) -> dict[str, Any]:
    """``variable -> values`` of a statement's conditions."""
    return {c["variable"]: c["values"] for c in stmt.get("condition", [])}


def test_flow_logs_are_allowed_where_aws_delivers_them(tf: TerraformTree) -> None:
    """The logs bucket policy grants the key layout the flow log's options produce: with
    hive-compatible partitions AWS writes <prefix>AWSLogs/aws-account-id=<id>/..., without
    them <prefix>AWSLogs/<id>/... (AWS VPC user guide, "Flow log files")."""
    flow_log = tf.resource("network", "aws_flow_log", "this").body
    assert flow_log["log_destination_type"] == "s3"
    assert flow_log["log_destination"] == "${var.flow_log_bucket_arn}/${var.flow_log_prefix}", flow_log
    network = tf.module_calls["network"].body
    assert network["flow_log_bucket_arn"] == "${module.logs.bucket_arn}", network
    assert network["flow_log_prefix"] == "${module.logs.flow_log_prefix}", network
    assert tf.output("logs", "bucket_arn").body["value"] == "${aws_s3_bucket.this.arn}"
    assert tf.output("logs", "flow_log_prefix").body["value"] == "${local.flow_log_prefix}"
    hive = flow_log.get("destination_options", [{}])[0].get("hive_compatible_partitions", False)
    account = "aws-account-id=${var.account_id}" if hive else "${var.account_id}"
    expected = f"${{aws_s3_bucket.this.arn}}/${{local.flow_log_prefix}}AWSLogs/{account}/*"
    write = statement(tf, "logs", "this", "VpcFlowLogsWrite")
    assert expected in write["resources"], (
        f"VpcFlowLogsWrite: flow logs (hive_compatible_partitions={hive}) write {expected}, "
        f"the policy allows {write['resources']}"
    )
    assert all("${var.account_id}" in r for r in write["resources"]), write["resources"]
    assert write["principals"][0]["identifiers"] == ["delivery.logs.amazonaws.com"], write["principals"]
    assert conditions(write).get("aws:SourceAccount") == ["${var.account_id}"], write.get("condition")


def test_only_the_archive_writes_server_access_logs(tf: TerraformTree) -> None:
    """The logs bucket takes S3 server access logs under its prefix from the archive bucket only."""
    logging = tf.resource("archive", "aws_s3_bucket_logging", "this").body
    assert tf.to_root("archive", logging["target_bucket"]) == "${module.logs.bucket_id}"
    assert tf.to_root("archive", logging["target_prefix"]) == "${module.logs.s3_access_log_prefix}"
    assert tf.output("logs", "s3_access_log_prefix").body["value"] == "${local.s3_access_log_prefix}"
    write = statement(tf, "logs", "this", "S3ServerAccessLogs")
    assert write["resources"] == ["${aws_s3_bucket.this.arn}/${local.s3_access_log_prefix}*"], write
    found = conditions(write)
    assert found.get("aws:SourceAccount") == ["${var.account_id}"], write.get("condition")
    pattern = "${var.name}-*-${var.account_id}-${var.region}"
    stack_buckets = tf.modules["logs"].locals["stack_bucket_arn_pattern"]
    assert found.get("aws:SourceArn") == ["${local.stack_bucket_arn_pattern}"], (
        f"S3ServerAccessLogs: expected aws:SourceArn limited to this stack's buckets, found {found}"
    )
    assert stack_buckets.endswith(f":s3:::{pattern}"), (
        f"logs local.stack_bucket_arn_pattern: found {stack_buckets!r}"
    )
    # the pattern matches the archive: both modules name buckets <name>-<kind>-<account>-<region>
    archive = tf.resource("archive", "aws_s3_bucket", "this").body["bucket"]
    assert archive == "${var.name}-archive-${var.account_id}-${var.region}", archive
    for variable in ("name", "account_id", "region"):
        assert tf.module_calls["archive"].body[variable] == tf.module_calls["logs"].body[variable], variable


# --- EC2 and IAM --------------------------------------------------------------------------


def test_every_instance_requires_imdsv2_and_encrypts_its_root_volume(tf: TerraformTree) -> None:
    """IMDSv2 (tokens required) and an encrypted root volume on the bastion and every edge node."""
    instances = tf.resources("aws_instance") + tf.resources("aws_launch_template")
    assert len(instances) >= 2, (
        f"expected the bastion and the edge nodes, found {[i.address for i in instances]}"
    )
    for instance in instances:
        metadata = instance.first("metadata_options")
        assert metadata.get("http_tokens") == "required", (
            f"{instance.address}: expected IMDSv2, found {metadata}"
        )
        assert metadata.get("http_endpoint") == "enabled", f"{instance.address}: found {metadata}"
        hop_limit = tf.evaluate(instance.module, metadata.get("http_put_response_hop_limit"))
        assert hop_limit in (1, 2), f"{instance.address}: hop limit {hop_limit!r}, expected 1 or 2"
        root = instance.first("root_block_device")
        assert root.get("encrypted") is True, (
            f"{instance.address}: expected an encrypted root volume, found {root}"
        )


def test_bastion_is_public_and_nodes_are_private(tf: TerraformTree) -> None:
    """Bastion in a public subnet (Elastic IP), edge nodes in the private subnets, no public IP on launch."""
    calls = tf.module_calls
    assert calls["bastion"].body["subnet_id"] == "${module.network.public_subnet_ids[0]}"
    assert calls["edge_nodes"].body["subnet_ids"] == "${module.network.private_subnet_ids}"
    for instance in tf.resources("aws_instance"):
        assert instance.body.get("associate_public_ip_address") in (None, False), (
            f"{instance.address}: public IP"
        )


def test_node_role_writes_only_the_archive_prefixes(tf: TerraformTree) -> None:
    """The instance profile may put/delete under the archive's raw/ and enriched/ and list it, no more."""
    document = tf.data("edge_nodes", "aws_iam_policy_document", "archive")
    statements = {s["sid"]: s for s in document.body["statement"]}
    write = statements["WriteArchivePrefixes"]
    assert set(write["actions"]) <= {"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}, write[
        "actions"
    ]
    assert (
        write["resources"] == '${[for p in var.archive_key_prefixes : "${var.archive_bucket_arn}/${p}*"]}'
    ), f"WriteArchivePrefixes: expected the archive prefixes only, found {write['resources']!r}"
    assert tf.module_calls["edge_nodes"].body["archive_key_prefixes"] == "${module.archive.key_prefixes}"
    kinds = tf.modules["archive"].locals["kinds"]
    assert kinds == ["raw", "enriched"], f"archive: expected the prefixes raw/ and enriched/, found {kinds}"
    actions = [a for s in statements.values() for a in s["actions"]]
    assert not [a for a in actions if "*" in a], f"node role: expected no wildcard actions, found {actions}"
    assert set(statements) == {"WriteArchivePrefixes", "ListArchive", "EncryptArchiveObjects"}, sorted(
        statements
    )
    listing = statements["ListArchive"]
    assert listing["actions"] == ["s3:ListBucket"], listing
    assert listing["resources"] == ["${var.archive_bucket_arn}"], (
        f"ListArchive: expected the archive bucket only, found {listing['resources']!r}"
    )
    encrypt = statements["EncryptArchiveObjects"]
    assert set(encrypt["actions"]) == {"kms:GenerateDataKey", "kms:Decrypt"}, encrypt["actions"]
    assert encrypt["resources"] == ["${var.kms_key_arn}"], (
        f"EncryptArchiveObjects: expected the stack key only, found {encrypt['resources']!r}"
    )
    assert conditions(encrypt).get("kms:ViaService") == ["s3.${var.region}.amazonaws.com"], (
        f"EncryptArchiveObjects: expected kms:ViaService = S3 of the stack's region, "
        f"found {encrypt.get('condition')}"
    )
    assert tf.to_root("edge_nodes", "${var.kms_key_arn}") == "${module.kms.key_arn}"
    assert tf.to_root("edge_nodes", "${var.archive_bucket_arn}") == "${module.archive.bucket_arn}"
    for stmt in statements.values():
        assert stmt.get("effect", "Allow") == "Allow" and not {"not_actions", "not_resources"} & set(stmt), (
            stmt
        )


def test_the_node_role_has_no_other_policy(tf: TerraformTree) -> None:
    """The archive policy is the role's only permission: no managed or inline policy elsewhere."""
    attached = [
        r.address
        for r in tf.resources()
        if r.type.startswith(
            ("aws_iam_role_policy", "aws_iam_policy", "aws_iam_user_policy", "aws_iam_group_policy")
        )
    ]
    assert attached == ["module.edge_nodes.aws_iam_role_policy.archive"], (
        f"expected the archive policy as the only IAM policy of the stack, found {attached}"
    )
    policy = tf.resource("edge_nodes", "aws_iam_role_policy", "archive").body
    assert policy["role"] == "${aws_iam_role.this.id}", policy
    assert policy["policy"] == "${data.aws_iam_policy_document.archive.json}", policy
    roles = tf.resources("aws_iam_role")
    assert [r.address for r in roles] == ["module.edge_nodes.aws_iam_role.this"], roles
    role = roles[0].body
    extra = {"managed_policy_arns", "inline_policy"} & set(role)
    assert not extra, f"aws_iam_role.this: expected no {sorted(extra)}"
    assume = tf.data("edge_nodes", "aws_iam_policy_document", "assume").body["statement"]
    assert [p["identifiers"] for s in assume for p in s["principals"]] == [["ec2.amazonaws.com"]], assume


def test_kms_key_rotates(tf: TerraformTree) -> None:
    """The stack's customer-managed key rotates yearly."""
    key = tf.resource("kms", "aws_kms_key", "this").body
    assert key["enable_key_rotation"] is True, f"aws_kms_key.this: expected rotation, found {key}"


def test_the_bastion_address_waits_for_the_internet_gateway(tf: TerraformTree) -> None:
    """aws_eip docs: an EIP may need the VPC's internet gateway before it can associate, and the
    bastion's module references nothing of the gateway by itself: a depends_on on a value that
    exists only once the gateway does carries the order."""
    eip = tf.resource("bastion", "aws_eip", "this").body
    assert "${terraform_data.internet_gateway}" in eip.get("depends_on", []), eip
    carrier = tf.resource("bastion", "terraform_data", "internet_gateway").body
    assert tf.to_root("bastion", carrier["input"]) == "${module.network.internet_gateway_id}", carrier
    assert tf.output("network", "internet_gateway_id").body["value"] == "${aws_internet_gateway.this.id}"


# regions opened since Jakarta (ap-southeast-3, December 2021): no ELB account, service principal only
NEWER_REGIONS = (
    "ap-southeast-3",
    "ap-south-2",
    "ap-southeast-4",
    "eu-central-2",
    "eu-south-2",
    "me-central-1",
    "il-central-1",
    "ca-west-1",
    "ap-southeast-5",
    "mx-central-1",
)


def test_load_balancer_logs_are_granted_in_every_region(tf: TerraformTree) -> None:
    """data.aws_elb_service_account fails in a region without an ELB account: it is read only in
    the older regions, and the logdelivery service principal is granted everywhere."""
    account = tf.data("logs", "aws_elb_service_account", "this").body
    assert account.get("count") == "${contains(local.elb_account_regions, var.region) ? 1 : 0}", account
    regions = tf.modules["logs"].locals["elb_account_regions"]
    assert {"us-east-1", "eu-central-1", "eu-west-1"} <= set(regions), regions
    assert not set(NEWER_REGIONS) & set(regions), f"regions without an ELB account listed: {regions}"
    grant = statement(tf, "logs", "this", "LoadBalancerAccessLogs")
    assert grant["principals"] == [
        {"type": "Service", "identifiers": ["logdelivery.elasticloadbalancing.amazonaws.com"]}
    ], grant["principals"]
    dynamic = grant.get("dynamic", [{}])[0].get("principals", {})
    assert dynamic.get("for_each") == "${data.aws_elb_service_account.this}", grant
    assert dynamic["content"] == [{"type": "AWS", "identifiers": ["${principals.value.arn}"]}], dynamic
    sids = [s["sid"] for s in tf.data("logs", "aws_iam_policy_document", "this").body["statement"]]
    assert not [s for s in sids if s.startswith("LoadBalancer") and s != "LoadBalancerAccessLogs"], sids
