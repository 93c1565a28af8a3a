variable "name" {
  description = "Name prefix of the security groups."
  type        = string
}

variable "vpc_id" {
  description = "VPC the security groups belong to."
  type        = string
}

variable "my_ip_cidr" {
  description = "The only source allowed to SSH into the bastion."
  type        = string
}

variable "api_ingress_cidrs" {
  description = "Sources allowed to reach the API load balancer on 443."
  type        = list(string)
}

variable "api_node_port" {
  description = "Port on the edge nodes the load balancer forwards to."
  type        = number
  default     = 443
}

variable "tags" {
  description = "Tags of every resource of the module."
  type        = map(string)
  default     = {}
}
