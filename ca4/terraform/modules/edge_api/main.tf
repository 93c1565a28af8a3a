# The Processor API's public entry: an internet-facing Application Load Balancer.
#
#   producer --HTTPS 443 (TLS ends here, ACM certificate)--> ALB + WAF
#            --HTTPS to node:443 (re-encrypted; Traefik's certificate is not verified)-->
#            K3s Traefik --HTTP--> Service processor-api:8080 (namespace app)
#
# Why an ALB: TLS with a managed certificate, HTTP health checks per node, a WAF (rate
# limit, known bad inputs) in front of a public API, access logs, and bodies and headers
# checked before they reach the cluster. Bearer tokens are checked by the API itself.

locals {
  own_certificate = var.certificate_arn == null
  url_host        = coalesce(var.domain_name, aws_lb.this.dns_name)
}

resource "aws_lb" "this" {
  name               = "${var.name}-api"
  internal           = false
  load_balancer_type = "application"
  security_groups    = [var.security_group_id]
  subnets            = var.public_subnet_ids

  drop_invalid_header_fields = true
  desync_mitigation_mode     = "strictest"
  enable_deletion_protection = var.deletion_protection
  idle_timeout               = 60

  access_logs {
    bucket  = var.access_log_bucket
    prefix  = var.access_log_prefix
    enabled = true
  }

  tags = merge(var.tags, { Name = "${var.name}-api" })
}

resource "aws_lb_target_group" "this" {
  name                 = "${var.name}-api-nodes"
  vpc_id               = var.vpc_id
  target_type          = "instance"
  protocol             = "HTTPS"
  port                 = var.target_port
  deregistration_delay = 30

  health_check {
    enabled             = true
    protocol            = "HTTPS"
    port                = "traffic-port"
    path                = var.health_check_path
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = merge(var.tags, { Name = "${var.name}-api-nodes" })
}

resource "aws_lb_target_group_attachment" "this" {
  count = length(var.target_instance_ids)

  target_group_arn = aws_lb_target_group.this.arn
  target_id        = var.target_instance_ids[count.index]
  port             = var.target_port
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-Res-2021-06" # TLS 1.3 and 1.2, forward-secret ciphers only
  certificate_arn   = local.own_certificate ? aws_acm_certificate.this[0].arn : var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this.arn
  }

  tags = merge(var.tags, { Name = "${var.name}-api-https" })
}

################################################################################
# Certificate when none is given: a private CA of this stack, whose certificate producers
# trust (output ca_certificate_pem). A public certificate needs a domain you control;
# give one with certificate_arn and domain_name, and this whole block disappears.
# The private keys live in the Terraform state, which must be stored encrypted.
################################################################################

resource "tls_private_key" "ca" {
  count = local.own_certificate ? 1 : 0

  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_self_signed_cert" "ca" {
  count = local.own_certificate ? 1 : 0

  private_key_pem       = tls_private_key.ca[0].private_key_pem
  is_ca_certificate     = true
  set_subject_key_id    = true
  validity_period_hours = 24 * 365 * 5
  allowed_uses          = ["cert_signing", "crl_signing"]

  subject {
    common_name  = "${var.name} edge API CA"
    organization = "CA4"
  }
}

resource "tls_private_key" "server" {
  count = local.own_certificate ? 1 : 0

  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_cert_request" "server" {
  count = local.own_certificate ? 1 : 0

  private_key_pem = tls_private_key.server[0].private_key_pem
  dns_names       = compact([aws_lb.this.dns_name, var.domain_name])

  subject {
    common_name  = "${var.name}-api" # names live in the SANs; a CN is capped at 64 characters
    organization = "CA4"
  }
}

resource "tls_locally_signed_cert" "server" {
  count = local.own_certificate ? 1 : 0

  cert_request_pem      = tls_cert_request.server[0].cert_request_pem
  ca_private_key_pem    = tls_private_key.ca[0].private_key_pem
  ca_cert_pem           = tls_self_signed_cert.ca[0].cert_pem
  set_subject_key_id    = true
  validity_period_hours = 24 * 365
  early_renewal_hours   = 24 * 30 # a plan in the last 30 days renews it
  allowed_uses          = ["digital_signature", "key_encipherment", "server_auth"]
}

resource "aws_acm_certificate" "this" {
  count = local.own_certificate ? 1 : 0

  private_key       = tls_private_key.server[0].private_key_pem
  certificate_body  = tls_locally_signed_cert.server[0].cert_pem
  certificate_chain = tls_self_signed_cert.ca[0].cert_pem

  tags = merge(var.tags, { Name = "${var.name}-api" })

  lifecycle {
    create_before_destroy = true # the listener moves to the renewed certificate first
  }
}

################################################################################
# WAF: rate limit per client address, AWS's reputation and anonymous-IP lists, known
# bad inputs (Log4Shell and friends) and the common rule set. Its log group redacts the
# Authorization header, so bearer tokens never land in logs.
################################################################################

resource "aws_wafv2_web_acl" "this" {
  name        = "${var.name}-api"
  description = "CA4 Processor API"
  scope       = "REGIONAL"

  default_action {
    allow {}
  }

  rule {
    name     = "rate-limit-per-ip"
    priority = 0

    action {
      block {}
    }

    statement {
      rate_based_statement {
        limit                 = var.rate_limit_per_5min
        aggregate_key_type    = "IP"
        evaluation_window_sec = 300
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-api-rate-limit"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "aws-ip-reputation"
    priority = 1

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesAmazonIpReputationList"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-api-ip-reputation"
      sampled_requests_enabled   = true
    }
  }

  # Tor exits and anonymising proxies are blocked; hosting providers only counted,
  # because Colab and most producers run in someone's cloud.
  rule {
    name     = "aws-anonymous-ip"
    priority = 2

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesAnonymousIpList"

        rule_action_override {
          name = "HostingProviderIPList"

          action_to_use {
            count {}
          }
        }
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-api-anonymous-ip"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "aws-known-bad-inputs"
    priority = 3

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-api-known-bad-inputs"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "aws-common"
    priority = 4

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesCommonRuleSet"

        # The rule set blocks bodies over 8 KB; a batch of events is larger by design
        # and the API enforces its own body limit (413).
        rule_action_override {
          name = "SizeRestrictions_BODY"

          action_to_use {
            count {}
          }
        }
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-api-common"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = "${var.name}-api"
    sampled_requests_enabled   = true
  }

  tags = merge(var.tags, { Name = "${var.name}-api" })
}

resource "aws_wafv2_web_acl_association" "this" {
  resource_arn = aws_lb.this.arn
  web_acl_arn  = aws_wafv2_web_acl.this.arn
}

resource "aws_cloudwatch_log_group" "waf" {
  name              = "aws-waf-logs-${var.name}-api" # WAF requires the aws-waf-logs- prefix
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn

  tags = merge(var.tags, { Name = "aws-waf-logs-${var.name}-api" })
}

resource "aws_wafv2_web_acl_logging_configuration" "this" {
  resource_arn            = aws_wafv2_web_acl.this.arn
  log_destination_configs = [aws_cloudwatch_log_group.waf.arn]

  redacted_fields {
    single_header {
      name = "authorization"
    }
  }
}
