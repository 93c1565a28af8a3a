output "public_ip" {
  description = "Elastic IP of the bastion (the SSH jump host)."
  value       = aws_eip.this.public_ip
}
