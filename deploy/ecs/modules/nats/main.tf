# A three-node NATS JetStream cluster on EC2, one node per availability
# zone, each with its JetStream store on an EBS volume of its own.
#
# Not on Fargate: a task's storage is ephemeral (the stream is the source of
# truth and must outlive every task), and JetStream's file store on EFS (NFS)
# is documented to corrupt and lose data. EBS is a block device in one zone,
# which is what the file store expects; the three zones and R3 streams make
# the loss of a zone, a node or a volume survivable.
#
# Each node keeps its private address across replacement (a fixed network
# interface) and its data (a separate volume, reattached), so the routes
# never change and a replaced node catches up from its own store.

locals {
  nodes        = 3
  client_port  = 4222
  cluster_port = 6222
  client_user  = "butakero"
  route_user   = "route"
  ips          = aws_network_interface.node[*].private_ip
  url          = join(",", [for ip in local.ips : "nats://${ip}:${local.client_port}"])
}

data "aws_region" "current" {}

# The latest Amazon Linux 2023 image for the instance type's architecture.
# Instances ignore later changes (see lifecycle below): roll them one at a
# time, as the README says.
data "aws_ssm_parameter" "ami" {
  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${var.architecture}"
}

data "aws_subnet" "node" {
  count = local.nodes
  id    = var.subnet_ids[count.index]
}

resource "aws_security_group" "nats" {
  name        = "${var.name}-nats"
  description = "NATS: clients from the tasks, routes between the nodes"
  vpc_id      = var.vpc_id

  ingress {
    description     = "NATS clients"
    from_port       = local.client_port
    to_port         = local.client_port
    protocol        = "tcp"
    security_groups = var.client_security_group_ids
  }

  ingress {
    description = "cluster routes"
    from_port   = local.cluster_port
    to_port     = local.cluster_port
    protocol    = "tcp"
    self        = true
  }

  egress {
    description = "package and release downloads, Secrets Manager, SSM"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_network_interface" "node" {
  count           = local.nodes
  subnet_id       = var.subnet_ids[count.index]
  security_groups = [aws_security_group.nats.id]
  tags = {
    Name = "${var.name}-nats-${count.index + 1}"
  }
}

resource "aws_ebs_volume" "data" {
  count             = local.nodes
  availability_zone = data.aws_subnet.node[count.index].availability_zone
  size              = var.volume_size_gib
  type              = "gp3"
  encrypted         = true
  tags = {
    Name = "${var.name}-nats-${count.index + 1}-jetstream"
  }

  lifecycle {
    precondition {
      condition     = length(distinct(data.aws_subnet.node[*].availability_zone)) == local.nodes
      error_message = "subnet_ids must be three subnets in three different availability zones."
    }
  }
}

resource "random_password" "client" {
  length  = 40
  special = false
}

resource "random_password" "route" {
  length  = 40
  special = false
}

# NATS_PASSWORD of every task. The nodes read both secrets at boot, so no
# password is in the instances' user data.
resource "aws_secretsmanager_secret" "client_password" {
  name                    = "${var.name}/nats/client-password"
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "client_password" {
  secret_id     = aws_secretsmanager_secret.client_password.id
  secret_string = random_password.client.result
}

resource "aws_secretsmanager_secret" "route_password" {
  name                    = "${var.name}/nats/route-password"
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "route_password" {
  secret_id     = aws_secretsmanager_secret.route_password.id
  secret_string = random_password.route.result
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name               = "${var.name}-nats"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

# Session Manager instead of SSH: no key pair, no port 22.
resource "aws_iam_role_policy_attachment" "ssm" {
  role       = aws_iam_role.node.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

data "aws_iam_policy_document" "node" {
  statement {
    sid       = "ReadPasswords"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.client_password.arn, aws_secretsmanager_secret.route_password.arn]
  }
}

resource "aws_iam_role_policy" "node" {
  name   = "passwords"
  role   = aws_iam_role.node.id
  policy = data.aws_iam_policy_document.node.json
}

resource "aws_iam_instance_profile" "node" {
  name = "${var.name}-nats"
  role = aws_iam_role.node.name
}

resource "aws_instance" "node" {
  count                = local.nodes
  ami                  = data.aws_ssm_parameter.ami.value
  instance_type        = var.instance_type
  iam_instance_profile = aws_iam_instance_profile.node.name

  network_interface {
    network_interface_id = aws_network_interface.node[count.index].id
    device_index         = 0
  }

  metadata_options {
    http_tokens = "required"
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = 8
    encrypted   = true
  }

  user_data = <<-EOT
    #!/bin/bash
    set -euo pipefail
    NODE=${count.index + 1}
    VERSION=${var.nats_server_version}
    ARCH=${var.architecture}
    VOLUME=${replace(aws_ebs_volume.data[count.index].id, "-", "")}
    REGION=${data.aws_region.current.name}

    # The JetStream volume: attached as /dev/sdf, it shows up as the NVMe
    # device whose serial is its volume id. Formatted only when blank.
    dev=/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_$VOLUME
    for _ in $(seq 1 120); do [ -e "$dev" ] && break; sleep 5; done
    [ -e "$dev" ] || { echo "volume $VOLUME never appeared" >&2; exit 1; }
    blkid "$dev" >/dev/null || mkfs.xfs "$dev"
    mkdir -p /var/lib/nats
    grep -q ' /var/lib/nats ' /etc/fstab || echo "$dev /var/lib/nats xfs defaults,nofail 0 2" >>/etc/fstab
    mount -a

    # nats-server from its release, checked against the release's sums.
    cd /tmp
    base=https://github.com/nats-io/nats-server/releases/download/v$VERSION
    tarball=nats-server-v$VERSION-linux-$ARCH.tar.gz
    curl -fsSLO "$base/$tarball"
    curl -fsSLO "$base/SHA256SUMS"
    grep " $tarball\$" SHA256SUMS | sha256sum -c -
    tar xzf "$tarball"
    install -m 0755 "nats-server-v$VERSION-linux-$ARCH/nats-server" /usr/local/bin/nats-server

    id nats >/dev/null 2>&1 || useradd --system --home-dir /var/lib/nats --shell /sbin/nologin nats
    chown -R nats:nats /var/lib/nats
    secret() { aws secretsmanager get-secret-value --region "$REGION" --secret-id "$1" --query SecretString --output text; }
    CLIENT_PASSWORD=$(secret ${aws_secretsmanager_secret.client_password.arn})
    ROUTE_PASSWORD=$(secret ${aws_secretsmanager_secret.route_password.arn})

    install -d -m 0750 -o nats -g nats /etc/nats
    umask 077
    cat >/etc/nats/nats.conf <<CONF
    server_name: ${var.name}-nats-$NODE
    listen: 0.0.0.0:${local.client_port}
    http: 127.0.0.1:8222
    lame_duck_duration: 30s
    jetstream {
      store_dir: /var/lib/nats/jetstream
    }
    authorization {
      users: [{ user: "${local.client_user}", password: "$CLIENT_PASSWORD" }]
    }
    cluster {
      name: ${var.name}
      listen: 0.0.0.0:${local.cluster_port}
      authorization { user: "${local.route_user}", password: "$ROUTE_PASSWORD" }
      routes: [${join(", ", [for ip in local.ips : "nats-route://${local.route_user}:$ROUTE_PASSWORD@${ip}:${local.cluster_port}"])}]
    }
    CONF
    chown nats:nats /etc/nats/nats.conf

    cat >/etc/systemd/system/nats.service <<UNIT
    [Unit]
    Description=NATS JetStream node $NODE
    After=network-online.target local-fs.target
    Wants=network-online.target
    RequiresMountsFor=/var/lib/nats

    [Service]
    User=nats
    ExecStart=/usr/local/bin/nats-server -c /etc/nats/nats.conf
    ExecReload=/bin/kill -HUP \$MAINPID
    # SIGUSR2 is lame-duck mode: clients move to the other nodes first.
    KillSignal=SIGUSR2
    TimeoutStopSec=60
    Restart=always
    LimitNOFILE=65536

    [Install]
    WantedBy=multi-user.target
    UNIT
    systemctl daemon-reload
    systemctl enable --now nats
  EOT

  # A new image or script must not replace all three nodes at once: roll
  # them one at a time (terraform apply -replace=...[0], wait, [1], ...).
  lifecycle {
    ignore_changes = [ami, user_data]
  }

  tags = {
    Name = "${var.name}-nats-${count.index + 1}"
  }
}

resource "aws_volume_attachment" "data" {
  count                          = local.nodes
  device_name                    = "/dev/sdf"
  volume_id                      = aws_ebs_volume.data[count.index].id
  instance_id                    = aws_instance.node[count.index].id
  stop_instance_before_detaching = true
}
