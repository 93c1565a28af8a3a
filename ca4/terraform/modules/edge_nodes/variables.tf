variable "name" {
  description = "Name prefix of the nodes' resources."
  type        = string
}

variable "region" {
  description = "Region of the stack (S3 requests through KMS are limited to it)."
  type        = string
}

variable "node_count" {
  description = "Number of edge nodes; the first is the K3s server."
  type        = number
}

variable "ami_id" {
  description = "AMI of the nodes."
  type        = string
}

variable "instance_type" {
  description = "Instance type of the nodes."
  type        = string
}

variable "root_volume_gb" {
  description = "Size of each node's encrypted root volume in GiB."
  type        = number
}

variable "metadata_hop_limit" {
  description = "IMDSv2 hop limit: 2 lets pods read the instance role (the worker's S3 access), 1 hides it from them."
  type        = number
  default     = 2
}

variable "subnet_ids" {
  description = "Private subnets; nodes are spread over them in turn."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the nodes."
  type        = string
}

variable "ssh_key_name" {
  description = "EC2 key pair allowed to log in (through the bastion)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the root volumes and of the archive bucket."
  type        = string
}

variable "archive_bucket_arn" {
  description = "ARN of the archive bucket the nodes (the worker) may write."
  type        = string
}

variable "archive_key_prefixes" {
  description = "Key prefixes inside the archive bucket the nodes may write (raw/ and enriched/, behind the archive prefix)."
  type        = list(string)
}

variable "tags" {
  description = "Tags of every resource of the module."
  type        = map(string)
  default     = {}
}
