# The resolver: song.requested in, video.resolved out. Its only store is
# the search cache (resolver.Cache: QueryVideo, PutQueryVideo, Video,
# PutVideo), which dynamostore keeps in the songs table.

data "aws_iam_policy_document" "task" {
  # dynamostore.Cache: GetItem and PutItem of query#… and video#… items.
  statement {
    sid       = "SearchCache"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem"]
    resources = [var.common.storage.songs_table_arn]
  }
}

module "service" {
  source = "../service"

  name   = "resolver"
  common = var.common
  size   = var.size

  consumer = "resolver"

  environment = merge(var.common.environment, var.common.storage.table_environment, {
    ALLOWED_MEDIA_HOSTS = var.allowed_media_hosts
  })
  secrets = merge(var.common.secrets, {
    YOUTUBE_API_KEY = var.youtube_api_key_secret_arn
  })
  # Searches without the Data API go through yt-dlp, which takes the cookies.
  secret_files = merge(var.common.secret_files, var.ytdlp_cookies_secret_arn == "" ? {} : {
    "ytdlp-cookies.txt" = { env = "YTDLP_COOKIES_FILE", secret_arn = var.ytdlp_cookies_secret_arn }
  })

  task_policy_json = data.aws_iam_policy_document.task.json
}
