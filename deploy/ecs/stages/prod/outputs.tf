output "load_balancer_dns_name" {
  description = "Point PUBLIC_URL's host at this name (an alias or CNAME record)."
  value       = module.butakero.load_balancer_dns_name
}

output "nats_url" {
  value = module.butakero.nats_url
}

output "bucket_name" {
  value = module.butakero.bucket_name
}

output "tables" {
  value = module.butakero.tables
}
