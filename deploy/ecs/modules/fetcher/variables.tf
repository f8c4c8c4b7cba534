variable "ytdlp_cookies_secret_arn" {
  description = "Secrets Manager secret holding a yt-dlp cookies file (Netscape format); empty for none."
  type        = string
  default     = ""
}

variable "ytdlp_proxy_secret_arn" {
  description = "Secrets Manager secret holding YTDLP_PROXY (a proxy URL, often with credentials); empty for none."
  type        = string
  default     = ""
}

variable "allowed_media_hosts" {
  description = "ALLOWED_MEDIA_HOSTS: hosts besides YouTube's whose URLs may be fetched directly."
  type        = string
  default     = ""
}
