variable "name" {
  description = "Name prefix of the API entry's resources."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the target group."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets of the load balancer (two zones)."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the load balancer."
  type        = string
}

variable "target_instance_ids" {
  description = "Edge nodes that serve the API."
  type        = list(string)
}

variable "target_port" {
  description = "Port on the edge nodes that serves the API over HTTPS (443: K3s's Traefik)."
  type        = number
  default     = 443
}

variable "health_check_path" {
  description = "Path the load balancer probes on every node (the Processor API's liveness endpoint)."
  type        = string
  default     = "/healthz"
}

variable "certificate_arn" {
  description = "ACM certificate of the HTTPS listener. Null: the module issues one from its own CA for the load balancer's DNS name (and domain_name)."
  type        = string
  default     = null
}

variable "domain_name" {
  description = "DNS name producers use (you point it at the load balancer). Null: the load balancer's DNS name."
  type        = string
  default     = null
}

variable "access_log_bucket" {
  description = "Bucket of the load balancer's access logs."
  type        = string
}

variable "access_log_prefix" {
  description = "Prefix (no trailing /) of the access logs in that bucket."
  type        = string
}

variable "deletion_protection" {
  description = "Refuse to delete the load balancer."
  type        = bool
  default     = true
}

variable "rate_limit_per_5min" {
  description = "Requests one client address may send in 5 minutes before the WAF blocks it."
  type        = number
  default     = 3000
}

variable "kms_key_arn" {
  description = "KMS key of the WAF log group."
  type        = string
}

variable "log_retention_days" {
  description = "Days the WAF log group keeps events."
  type        = number
}

variable "tags" {
  description = "Tags of every resource of the module."
  type        = map(string)
  default     = {}
}
