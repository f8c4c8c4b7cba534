output "service_name" {
  value = module.service.service_name
}

output "task_role_arn" {
  value = module.service.task_role_arn
}
