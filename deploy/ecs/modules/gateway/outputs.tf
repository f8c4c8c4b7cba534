output "service_name" {
  value = module.service.service_name
}

output "task_role_arn" {
  value = module.service.task_role_arn
}

output "dns_name" {
  description = "The load balancer's name in DNS: point PUBLIC_URL's host at it."
  value       = aws_lb.this.dns_name
}
