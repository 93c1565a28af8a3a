variable "name" {
  description = "Name prefix of the cluster's resources."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the cluster (two zones)."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the cluster (27017 from the edge nodes only)."
  type        = string
}

variable "master_username" {
  description = "Master user of the cluster."
  type        = string
}

variable "master_password" {
  description = "Master password of the cluster."
  type        = string
  sensitive   = true
}

variable "instance_class" {
  description = "Instance class of the cluster's instances."
  type        = string
}

variable "instance_count" {
  description = "Number of instances (the first is the writer)."
  type        = number
  default     = 1
}

variable "cluster_parameters" {
  description = "Cluster parameters (name => value) merged over tls=tls1.2+ and audit_logs=enabled."
  type        = map(string)
  default     = {}
}

variable "backup_retention_days" {
  description = "Days of automated backups."
  type        = number
  default     = 7
}

variable "deletion_protection" {
  description = "Refuse to delete the cluster."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "KMS key of the storage and the log groups."
  type        = string
}

variable "log_retention_days" {
  description = "Days the audit and profiler log groups keep events."
  type        = number
}

variable "tags" {
  description = "Tags of every resource of the module."
  type        = map(string)
  default     = {}
}
