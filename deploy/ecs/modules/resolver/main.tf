# The resolver: song.requested in, video.resolved out. Its only store is
# the search cache (resolver.Cache: QueryVideo, PutQueryVideo, Video,
# PutVideo), which dynamostore keeps in the songs table.

data "aws_iam_policy_document" "task" {
  # dynamostore.Cache: GetItem and PutItem of query#… and video#… items.
  statement {
    sid       = "SearchCache"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem"]
    resources = [var.storage.songs_table_arn]
  }
}

module "service" {
  source = "../service"

  stage            = var.common.stage
  name             = "resolver"
  image            = var.common.image
  region           = var.common.region
  cluster_arn      = var.common.cluster_arn
  cluster_name     = var.common.cluster_name
  cpu_architecture = var.common.cpu_architecture

  cpu                     = var.size.cpu
  memory                  = var.size.memory
  min_count               = var.size.min
  max_count               = var.size.max
  capacity_provider       = var.size.capacity_provider
  consumer                = "resolver"
  backlog_target_per_task = var.size.backlog_per_task

  environment = merge(var.common.environment, var.storage.table_environment, {
    ALLOWED_MEDIA_HOSTS = var.allowed_media_hosts
  })
  secrets = merge(var.common.secrets, {
    YOUTUBE_API_KEY = var.youtube_api_key_secret_arn
  })
  # Searches without the Data API go through yt-dlp, which takes the cookies.
  secret_files = merge(var.common.secret_files, var.ytdlp_cookies_secret_arn == "" ? {} : {
    "ytdlp-cookies.txt" = { env = "YTDLP_COOKIES_FILE", secret_arn = var.ytdlp_cookies_secret_arn }
  })

  task_policy_json   = data.aws_iam_policy_document.task.json
  subnet_ids         = var.common.subnet_ids
  security_group_ids = var.common.security_group_ids
  log_retention_days = var.common.log_retention_days
}
