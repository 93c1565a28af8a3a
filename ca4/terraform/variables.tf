################################################################################
# Where and what
################################################################################

variable "aws_region" {
  description = "AWS region for every CA4 resource, e.g. eu-central-1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must be a region name such as eu-central-1."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (and the `Stack` tag), so CA4 never collides with another stack in the account. Short: load balancer names are limited to 32 characters."
  type        = string
  default     = "ca4"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}$", var.name_prefix))
    error_message = "name_prefix must be 2-15 characters of lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags for every resource. Project, Stack and ManagedBy are always set and win over these."
  type        = map(string)
  default     = {}
}

################################################################################
# Network
################################################################################

variable "vpc_cidr" {
  description = "CIDR of the VPC. Must not overlap K3s's pod (10.42.0.0/16) and service (10.43.0.0/16) ranges."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    # Two ranges overlap when both networks agree on the shorter prefix. try(): HCL's &&
    # does not short-circuit, so a malformed CIDR must fail here, not raise an error.
    condition = try(
      tonumber(split("/", var.vpc_cidr)[1]) <= 20 && alltrue([
        for k3s in ["10.42.0.0", "10.43.0.0"] :
        cidrhost("${cidrhost(var.vpc_cidr, 0)}/${min(16, tonumber(split("/", var.vpc_cidr)[1]))}", 0) !=
        cidrhost("${k3s}/${min(16, tonumber(split("/", var.vpc_cidr)[1]))}", 0)
      ]),
      false
    )
    error_message = "vpc_cidr must be a CIDR of /20 or larger that does not overlap K3s's 10.42.0.0/16 (pods) or 10.43.0.0/16 (services)."
  }
}

variable "availability_zones" {
  description = "Exactly two availability zones to spread subnets, edge nodes and DocumentDB over. Empty: the region's first two zones that need no opt-in."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.availability_zones) == 0 || length(var.availability_zones) == 2
    error_message = "availability_zones must be empty (automatic) or name exactly two zones."
  }
}

variable "nat_gateway_per_az" {
  description = "One NAT gateway per availability zone (survives the loss of a zone, costs one more gateway). Default: a single NAT gateway for both private subnets."
  type        = bool
  default     = false
}

variable "flow_log_traffic_type" {
  description = "Which traffic the VPC flow logs record: ACCEPT, REJECT or ALL."
  type        = string
  default     = "ALL"

  validation {
    condition     = contains(["ACCEPT", "REJECT", "ALL"], var.flow_log_traffic_type)
    error_message = "flow_log_traffic_type must be ACCEPT, REJECT or ALL."
  }
}

variable "log_retention_days" {
  description = "Days to keep VPC flow logs, load balancer and S3 access logs (logs bucket), and the DocumentDB and WAF log groups."
  type        = number
  default     = 365

  validation {
    # the values CloudWatch Logs accepts, at least a year (what auditors usually ask for)
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention of at least 365 days (365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

################################################################################
# Access: who may reach what from the internet
################################################################################

variable "my_ip_cidr" {
  description = "Your public address as a CIDR (e.g. 203.0.113.7/32): the only source allowed to SSH into the bastion, and so into everything behind it."
  type        = string

  validation {
    condition     = can(cidrhost(var.my_ip_cidr, 0)) && try(tonumber(split("/", var.my_ip_cidr)[1]) >= 16, false) && !strcontains(var.my_ip_cidr, ":")
    error_message = "my_ip_cidr must be an IPv4 CIDR of /16 or narrower (normally your address with /32); 0.0.0.0/0 is refused."
  }
}

variable "ssh_key_name" {
  description = "Name of an existing EC2 key pair in aws_region, installed on the bastion and the edge nodes."
  type        = string

  validation {
    condition     = length(trimspace(var.ssh_key_name)) > 0
    error_message = "ssh_key_name must name an EC2 key pair."
  }
}

variable "api_ingress_cidrs" {
  description = "IPv4 CIDRs allowed to reach the Processor API on 443. Public by default: producers such as Colab have no fixed address, so the bearer token, TLS and the WAF protect the API."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.api_ingress_cidrs) > 0 && alltrue([for c in var.api_ingress_cidrs : can(cidrhost(c, 0)) && !strcontains(c, ":")])
    error_message = "api_ingress_cidrs must hold at least one IPv4 CIDR."
  }
}

################################################################################
# Compute: bastion and K3s edge nodes
################################################################################

variable "ami_ssm_parameter" {
  description = "SSM parameter holding the AMI of the bastion and the edge nodes (Ubuntu 24.04 LTS, amd64, by default). Use an arm64 path together with Graviton instance types."
  type        = string
  default     = "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
}

variable "bastion_instance_type" {
  description = "Instance type of the bastion (it only forwards SSH)."
  type        = string
  default     = "t3.micro"
}

variable "edge_node_instance_type" {
  description = "Instance type of the K3s edge nodes (Kafka, the API, the worker and monitoring share them)."
  type        = string
  default     = "t3.large"
}

variable "edge_node_count" {
  description = "Number of K3s edge nodes in the private subnets. The first is the K3s server; 3 lets Kafka run with replication factor 3."
  type        = number
  default     = 3

  validation {
    condition     = var.edge_node_count >= 1 && var.edge_node_count <= 10 && floor(var.edge_node_count) == var.edge_node_count
    error_message = "edge_node_count must be a whole number from 1 to 10."
  }
}

variable "edge_node_root_volume_gb" {
  description = "Size of each edge node's encrypted root volume in GiB (container images, Kafka logs, Prometheus and Loki data)."
  type        = number
  default     = 50

  validation {
    condition     = var.edge_node_root_volume_gb >= 20
    error_message = "edge_node_root_volume_gb must be at least 20."
  }
}

variable "edge_node_metadata_hop_limit" {
  description = "IMDSv2 response hop limit of the edge nodes. 2 lets the Metadata Worker pod read the node's instance-profile credentials (the only way it gets S3 access); 1 hides them from every pod. See README: pod credentials."
  type        = number
  default     = 2

  validation {
    condition     = contains([1, 2], var.edge_node_metadata_hop_limit)
    error_message = "edge_node_metadata_hop_limit must be 1 or 2."
  }
}

################################################################################
# DocumentDB
################################################################################

variable "db_username" {
  description = "Master user name of the DocumentDB cluster."
  type        = string
  default     = "ca4admin"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9]{0,62}$", var.db_username)) && !contains(["admin", "root", "serviceadmin"], lower(var.db_username))
    error_message = "db_username must be 1-63 letters or digits, start with a letter, and not be a reserved name (admin, root, serviceadmin)."
  }
}

variable "db_password" {
  description = "Master password of the DocumentDB cluster. Never committed: set it in terraform.tfvars (gitignored) or TF_VAR_db_password."
  type        = string
  sensitive   = true

  validation {
    # DocumentDB refuses / " @; spaces and : would need quoting in the MONGO_URI
    condition     = length(var.db_password) >= 12 && length(var.db_password) <= 100 && can(regex("^[!#-.0-9;-?A-~]+$", var.db_password))
    error_message = "db_password must be 12-100 printable ASCII characters without spaces, /, \", @ or :."
  }
}

variable "db_instance_class" {
  description = "Instance class of the DocumentDB instances."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_instance_count" {
  description = "Number of DocumentDB instances (1 writer, the rest readers in the other zone)."
  type        = number
  default     = 1

  validation {
    condition     = var.db_instance_count >= 1 && var.db_instance_count <= 16 && floor(var.db_instance_count) == var.db_instance_count
    error_message = "db_instance_count must be a whole number from 1 to 16."
  }
}

variable "db_cluster_params" {
  description = "Extra DocumentDB 5.0 cluster parameters (name => value), merged over the defaults tls=tls1.2+ and audit_logs=enabled. Both can be tightened (tls1.3+, fips-140-3; audit_logs all, ddl, ...) but never weakened or switched off."
  type        = map(string)
  default     = {}

  validation {
    condition     = contains(["tls1.2+", "tls1.3+", "fips-140-3"], lookup(var.db_cluster_params, "tls", "tls1.2+"))
    error_message = "db_cluster_params tls must be tls1.2+, tls1.3+ or fips-140-3: the worker and the security model require TLS 1.2 or newer to DocumentDB (enabled would accept 1.0 and 1.1, disabled none)."
  }

  validation {
    condition     = !contains(["disabled", "none"], lookup(var.db_cluster_params, "audit_logs", "enabled"))
    error_message = "db_cluster_params must not switch audit_logs off."
  }
}

variable "db_backup_retention_days" {
  description = "Days DocumentDB keeps automated backups."
  type        = number
  default     = 7

  validation {
    condition     = var.db_backup_retention_days >= 7 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be from 7 to 35."
  }
}

variable "deletion_protection" {
  description = "Protect the data: DocumentDB and the API load balancer refuse deletion and non-empty S3 buckets are kept. Set false and apply before `make ca4-destroy`."
  type        = bool
  default     = true
}

################################################################################
# Archive
################################################################################

variable "archive_prefix" {
  description = "Key prefix inside the archive bucket (the worker's S3_PREFIX): empty, or ending in '/'. raw/ and enriched/ live under it."
  type        = string
  default     = ""

  validation {
    condition     = var.archive_prefix == "" || can(regex("^[a-z0-9][a-z0-9._-]*/$", var.archive_prefix))
    error_message = "archive_prefix must be empty or lower-case letters, digits, '.', '_' or '-' ending in '/'."
  }
}

variable "archive_lifecycle" {
  description = "Lifecycle of the archive's raw/ and enriched/ objects: days until Standard-IA, until Glacier Instant Retrieval, and until expiry."
  type = map(object({
    standard_ia_after_days = number
    glacier_ir_after_days  = number
    expire_after_days      = number
  }))
  default = {
    raw      = { standard_ia_after_days = 30, glacier_ir_after_days = 90, expire_after_days = 365 }
    enriched = { standard_ia_after_days = 30, glacier_ir_after_days = 180, expire_after_days = 730 }
  }

  validation {
    condition     = toset(keys(var.archive_lifecycle)) == toset(["raw", "enriched"])
    error_message = "archive_lifecycle must have exactly the keys raw and enriched."
  }

  validation {
    condition = alltrue([
      for r in values(var.archive_lifecycle) :
      r.standard_ia_after_days >= 30 && r.glacier_ir_after_days >= r.standard_ia_after_days + 30 && r.expire_after_days > r.glacier_ir_after_days
    ])
    error_message = "Each archive_lifecycle rule needs standard_ia_after_days >= 30, glacier_ir_after_days at least 30 days later, and expire_after_days after that (S3's minimum storage durations)."
  }
}

################################################################################
# The public entry of the Processor API
################################################################################

variable "api_certificate_arn" {
  description = "ACM certificate for the API's HTTPS listener (normally one for api_domain_name). Null: the stack creates its own CA and a certificate for the load balancer's DNS name, and outputs the CA for producers to trust."
  type        = string
  default     = null

  validation {
    condition     = var.api_certificate_arn == null || can(regex("^arn:aws[a-z-]*:acm:", var.api_certificate_arn))
    error_message = "api_certificate_arn must be an ACM certificate ARN or null."
  }
}

variable "api_domain_name" {
  description = "DNS name producers use for the API (a CNAME or alias to the load balancer that you manage). Null: the load balancer's own DNS name."
  type        = string
  default     = null
}

variable "api_node_port" {
  description = "Port on the edge nodes that the load balancer forwards HTTPS to: 443 is K3s's bundled Traefik (websecure), which routes to the processor-api Service in namespace app."
  type        = number
  default     = 443

  validation {
    condition     = var.api_node_port == 443 || (var.api_node_port >= 30000 && var.api_node_port <= 32767)
    error_message = "api_node_port must be 443 (Traefik) or a Kubernetes NodePort (30000-32767)."
  }
}

variable "api_rate_limit_per_5min" {
  description = "WAF rate limit: requests one client address may send the API in 5 minutes before it is blocked for a while."
  type        = number
  default     = 3000

  validation {
    condition     = var.api_rate_limit_per_5min >= 100
    error_message = "api_rate_limit_per_5min must be at least 100 (the WAF minimum)."
  }
}
