output "load_balancer_dns_name" {
  value = module.gateway.dns_name
}

output "nats_url" {
  value = local.nats_url
}

output "bucket_name" {
  value = module.storage.bucket_name
}

output "tables" {
  value = {
    operations = module.storage.operations_table_name
    songs      = module.storage.songs_table_name
  }
}
