variable "size" {
  type = object({
    cpu = number
    spot = optional(bool, false)
  })
}

locals {
  names = ["a", "b"]
}

resource "aws_s3_bucket" "b" {
  bucket = "bucket-${var.size.cpu}"
}

resource "aws_thing" "n" {
  count  = length(local.names)
  name   = local.names[count.index]
  bucket = aws_s3_bucket.b.arn
  dynamic "rule" {
    for_each = var.size.spot ? [] : ["x", "y"]
    content {
      id = rule.value
    }
  }
}

resource "aws_thing" "keyed" {
  for_each = { first = "a", second = "b" }
  name     = "${each.key}-${each.value}"
}

output "keyed" {
  value = aws_thing.keyed["second"].name
}

module "child" {
  source = "./child"
  count  = 1
  in     = join(",", aws_thing.n[*].id)
}

output "from_child" {
  value = module.child[0].out
}
