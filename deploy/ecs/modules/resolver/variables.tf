variable "youtube_api_key_secret_arn" {
  description = "Secrets Manager secret holding YOUTUBE_API_KEY."
  type        = string
}

variable "ytdlp_cookies_secret_arn" {
  description = "Secrets Manager secret holding a yt-dlp cookies file (Netscape format); empty for none."
  type        = string
  default     = ""
}

variable "allowed_media_hosts" {
  description = "ALLOWED_MEDIA_HOSTS: hosts besides YouTube's whose URLs may be fetched directly."
  type        = string
  default     = ""
}
