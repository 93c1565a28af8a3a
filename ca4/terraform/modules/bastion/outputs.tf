output "instance_id" {
  description = "Instance ID of the bastion."
  value       = aws_instance.this.id
}

output "public_ip" {
  description = "Elastic IP of the bastion (the SSH jump host)."
  value       = aws_eip.this.public_ip
}

output "private_ip" {
  description = "Private IP of the bastion."
  value       = aws_instance.this.private_ip
}
