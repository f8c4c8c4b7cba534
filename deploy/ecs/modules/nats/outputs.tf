output "url" {
  description = "NATS_URL: every node's client URL."
  value       = local.url
}

output "replicas" {
  description = "STREAM_REPLICAS: one replica per node."
  value       = local.nodes
}

output "client_user" {
  description = "NATS_USER of every task."
  value       = local.client_user
}

output "client_password_secret_arn" {
  description = "The Secrets Manager secret holding NATS_PASSWORD."
  value       = aws_secretsmanager_secret.client_password.arn
}

output "security_group_id" {
  value = aws_security_group.nats.id
}
