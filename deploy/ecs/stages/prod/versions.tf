terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.70"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # State in S3, configured at init: terraform init -backend-config=backend.hcl
  # (see backend.hcl.example). It holds the NATS passwords: keep it encrypted.
  backend "s3" {}
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project = "butakero"
      Stage   = local.stage
    }
  }
}
