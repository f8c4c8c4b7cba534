variable "vpc_id" {
  type = string
}

variable "public_subnet_ids" {
  description = "Subnets of the load balancer (two zones at least)."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate of the HTTPS listener; empty serves plain HTTP on port 80 (development only)."
  type        = string
  default     = ""
}

variable "public_url" {
  description = "PUBLIC_URL: the URL users reach the gateway at (https://butakero.example). Its origin may open the WebSocket."
  type        = string
}

variable "allowed_origins" {
  description = "ALLOWED_ORIGINS: other origins allowed for the WebSocket and CORS, comma-separated."
  type        = string
  default     = ""
}

variable "api_keys_secret_arn" {
  description = "Secrets Manager secret holding API_KEYS (comma-separated)."
  type        = string
}
