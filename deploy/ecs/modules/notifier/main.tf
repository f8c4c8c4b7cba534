# The notifier: every operation's final event in, one signed webhook
# delivery per WEBHOOK_URL out, each URL through its own durable consumer
# (notifier.ConsumerName), which every notifier task shares. It opens no
# store (services/notifier/notifier/alone.go uses only the NATS
# connection): its task knows no bucket or table, and its role has no
# policy of its own. It reports no backlog (its consumers are one per URL,
# none of standalone's stage consumers), so it does not scale: its tasks
# are a fixed count, the second one a standby.

module "service" {
  source = "../service"

  name   = "notifier"
  common = var.common
  size   = var.size

  environment = merge(var.common.environment, {
    WEBHOOK_URL           = var.webhook_urls
    WEBHOOK_ALLOWED_HOSTS = var.webhook_allowed_hosts
    WEBHOOK_MAX_AGE       = var.webhook_max_age
  })
  secrets = merge(var.common.secrets, {
    WEBHOOK_SECRET = var.webhook_secret_arn
  })
  secret_files = var.common.secret_files
}
