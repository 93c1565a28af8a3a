variable "name" {
  description = "Name prefix of the bastion's resources."
  type        = string
}

variable "ami_id" {
  description = "AMI of the bastion."
  type        = string
}

variable "instance_type" {
  description = "Instance type of the bastion."
  type        = string
  default     = "t3.micro"
}

variable "subnet_id" {
  description = "Public subnet of the bastion."
  type        = string
}

variable "internet_gateway_id" {
  description = "Internet gateway of the VPC: the Elastic IP is associated only once it exists."
  type        = string
}

variable "security_group_id" {
  description = "Security group of the bastion."
  type        = string
}

variable "ssh_key_name" {
  description = "EC2 key pair allowed to log in."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the root volume."
  type        = string
}

variable "root_volume_gb" {
  description = "Size of the encrypted root volume in GiB."
  type        = number
  default     = 10
}

variable "tags" {
  description = "Tags of every resource of the module."
  type        = map(string)
  default     = {}
}
