# Four security groups that reference each other instead of address ranges:
#
#   my_ip_cidr --22--> bastion --22, 6443--> nodes <--443-- load balancer <--443-- api_ingress_cidrs
#                                            nodes <--6443, 10250, 8472/udp--> nodes
#                                            nodes --27017--> DocumentDB
#
# Tunnels to Kafka (19092+) and Grafana (3000) ride on SSH to a node (ssh -J bastion
# node -L ...), so the bastion needs no other port on the nodes. DNS, NTP and the
# instance metadata service are link-local and not filtered by security groups.

resource "aws_security_group" "bastion" {
  #checkov:skip=CKV2_AWS_5:Attached to the bastion instance (module bastion) through this module's outputs, which checkov's graph does not follow across modules.
  name        = "${var.name}-bastion"
  description = "CA4 bastion: SSH from the operator address (my_ip_cidr), SSH and the K3s API onward to the nodes"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-bastion" })
}

resource "aws_security_group" "nodes" {
  #checkov:skip=CKV2_AWS_5:Attached to the edge node instances (module edge_nodes) through this module's outputs, which checkov's graph does not follow across modules.
  name        = "${var.name}-edge-nodes"
  description = "CA4 K3s edge nodes: SSH and K3s API from the bastion, HTTPS from the API load balancer, K3s between nodes"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-edge-nodes" })
}

resource "aws_security_group" "db" {
  #checkov:skip=CKV2_AWS_5:Attached to the DocumentDB cluster (module documentdb) through this module's outputs, which checkov's graph does not follow across modules.
  name        = "${var.name}-documentdb"
  description = "CA4 DocumentDB: 27017 from the K3s edge nodes only"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-documentdb" })
}

resource "aws_security_group" "lb" {
  #checkov:skip=CKV2_AWS_5:Attached to the API load balancer (module edge_api) through this module's outputs, which checkov's graph does not follow across modules.
  name        = "${var.name}-api-lb"
  description = "CA4 Processor API load balancer: HTTPS from producers, HTTPS to the edge nodes"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-api-lb" })
}

################################################################################
# Bastion
################################################################################

resource "aws_vpc_security_group_ingress_rule" "bastion_ssh_from_operator" {
  security_group_id = aws_security_group.bastion.id
  description       = "SSH from the operator address (my_ip_cidr) only"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = var.my_ip_cidr

  tags = merge(var.tags, { Name = "${var.name}-bastion-ssh-from-operator" })
}

resource "aws_vpc_security_group_egress_rule" "bastion_ssh_to_nodes" {
  security_group_id            = aws_security_group.bastion.id
  description                  = "SSH to the edge nodes (jump host and tunnels)"
  ip_protocol                  = "tcp"
  from_port                    = 22
  to_port                      = 22
  referenced_security_group_id = aws_security_group.nodes.id

  tags = merge(var.tags, { Name = "${var.name}-bastion-ssh-to-nodes" })
}

resource "aws_vpc_security_group_egress_rule" "bastion_k3s_api_to_nodes" {
  security_group_id            = aws_security_group.bastion.id
  description                  = "K3s API on the nodes (the 16443 tunnel)"
  ip_protocol                  = "tcp"
  from_port                    = 6443
  to_port                      = 6443
  referenced_security_group_id = aws_security_group.nodes.id

  tags = merge(var.tags, { Name = "${var.name}-bastion-k3s-api-to-nodes" })
}

resource "aws_vpc_security_group_egress_rule" "bastion_https_out" {
  security_group_id = aws_security_group.bastion.id
  description       = "HTTPS out for OS updates"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"

  tags = merge(var.tags, { Name = "${var.name}-bastion-https-out" })
}

resource "aws_vpc_security_group_egress_rule" "bastion_http_out" {
  security_group_id = aws_security_group.bastion.id
  description       = "HTTP out for Ubuntu package mirrors (packages are signed)"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = "0.0.0.0/0"

  tags = merge(var.tags, { Name = "${var.name}-bastion-http-out" })
}

################################################################################
# K3s edge nodes
################################################################################

resource "aws_vpc_security_group_ingress_rule" "nodes_ssh_from_bastion" {
  #checkov:skip=CKV_AWS_24:False positive: the source is the bastion's security group (referenced_security_group_id), which CKV_AWS_24 does not read for this resource type; there is no CIDR at all.
  security_group_id            = aws_security_group.nodes.id
  description                  = "SSH from the bastion only"
  ip_protocol                  = "tcp"
  from_port                    = 22
  to_port                      = 22
  referenced_security_group_id = aws_security_group.bastion.id

  tags = merge(var.tags, { Name = "${var.name}-nodes-ssh-from-bastion" })
}

resource "aws_vpc_security_group_ingress_rule" "nodes_k3s_api_from_bastion" {
  security_group_id            = aws_security_group.nodes.id
  description                  = "K3s API from the bastion (operator tunnel)"
  ip_protocol                  = "tcp"
  from_port                    = 6443
  to_port                      = 6443
  referenced_security_group_id = aws_security_group.bastion.id

  tags = merge(var.tags, { Name = "${var.name}-nodes-k3s-api-from-bastion" })
}

resource "aws_vpc_security_group_ingress_rule" "nodes_api_from_lb" {
  security_group_id            = aws_security_group.nodes.id
  description                  = "Processor API (HTTPS to Traefik) from the API load balancer only"
  ip_protocol                  = "tcp"
  from_port                    = var.api_node_port
  to_port                      = var.api_node_port
  referenced_security_group_id = aws_security_group.lb.id

  tags = merge(var.tags, { Name = "${var.name}-nodes-api-from-lb" })
}

# Node to node: the K3s server API (agents join and talk to it on 6443), the kubelet
# (logs, exec, metrics-server on 10250) and flannel's VXLAN overlay (8472/udp), which
# carries every pod-to-pod packet between nodes (Kafka replication, Prometheus scrapes).
locals {
  node_peer_ports = {
    k3s-api = { protocol = "tcp", port = 6443, description = "K3s API between nodes (agents to server)" }
    kubelet = { protocol = "tcp", port = 10250, description = "Kubelet between nodes (logs, exec, metrics)" }
    flannel = { protocol = "udp", port = 8472, description = "Flannel VXLAN overlay between nodes (all pod-to-pod traffic)" }
  }
}

resource "aws_vpc_security_group_ingress_rule" "nodes_from_nodes" {
  for_each = local.node_peer_ports

  security_group_id            = aws_security_group.nodes.id
  description                  = each.value.description
  ip_protocol                  = each.value.protocol
  from_port                    = each.value.port
  to_port                      = each.value.port
  referenced_security_group_id = aws_security_group.nodes.id

  tags = merge(var.tags, { Name = "${var.name}-nodes-${each.key}-from-nodes" })
}

resource "aws_vpc_security_group_egress_rule" "nodes_to_nodes" {
  for_each = local.node_peer_ports

  security_group_id            = aws_security_group.nodes.id
  description                  = each.value.description
  ip_protocol                  = each.value.protocol
  from_port                    = each.value.port
  to_port                      = each.value.port
  referenced_security_group_id = aws_security_group.nodes.id

  tags = merge(var.tags, { Name = "${var.name}-nodes-${each.key}-to-nodes" })
}

resource "aws_vpc_security_group_egress_rule" "nodes_to_db" {
  security_group_id            = aws_security_group.nodes.id
  description                  = "DocumentDB (the Metadata Worker)"
  ip_protocol                  = "tcp"
  from_port                    = 27017
  to_port                      = 27017
  referenced_security_group_id = aws_security_group.db.id

  tags = merge(var.tags, { Name = "${var.name}-nodes-to-db" })
}

resource "aws_vpc_security_group_egress_rule" "nodes_https_out" {
  security_group_id = aws_security_group.nodes.id
  description       = "HTTPS out through NAT: K3s install, container registries, AWS APIs, S3"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"

  tags = merge(var.tags, { Name = "${var.name}-nodes-https-out" })
}

resource "aws_vpc_security_group_egress_rule" "nodes_http_out" {
  security_group_id = aws_security_group.nodes.id
  description       = "HTTP out through NAT for Ubuntu package mirrors (packages are signed)"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = "0.0.0.0/0"

  tags = merge(var.tags, { Name = "${var.name}-nodes-http-out" })
}

################################################################################
# DocumentDB: no egress rule at all (it never opens a connection)
################################################################################

resource "aws_vpc_security_group_ingress_rule" "db_from_nodes" {
  security_group_id            = aws_security_group.db.id
  description                  = "MongoDB wire protocol from the K3s edge nodes only"
  ip_protocol                  = "tcp"
  from_port                    = 27017
  to_port                      = 27017
  referenced_security_group_id = aws_security_group.nodes.id

  tags = merge(var.tags, { Name = "${var.name}-db-from-nodes" })
}

################################################################################
# API load balancer: the only ingress from the internet besides the bastion's SSH
################################################################################

resource "aws_vpc_security_group_ingress_rule" "lb_https_from_producers" {
  for_each = toset(var.api_ingress_cidrs)

  security_group_id = aws_security_group.lb.id
  description       = "HTTPS to the Processor API from producers (Colab and other hosts)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value

  tags = merge(var.tags, { Name = "${var.name}-lb-https-from-producers" })
}

resource "aws_vpc_security_group_egress_rule" "lb_to_nodes" {
  security_group_id            = aws_security_group.lb.id
  description                  = "HTTPS to the edge nodes (requests and health checks)"
  ip_protocol                  = "tcp"
  from_port                    = var.api_node_port
  to_port                      = var.api_node_port
  referenced_security_group_id = aws_security_group.nodes.id

  tags = merge(var.tags, { Name = "${var.name}-lb-to-nodes" })
}
