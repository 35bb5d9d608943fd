"""Which of the common service settings (service.* in environment/config.py, ServiceConfig)
each managed target reads, and why it refuses the others: one decision per target and
field, so no setting is accepted and silently ignored (issue 25).

A field a target does not read is refused by `target_problems` with the file, line and
field (exit 2 at validate). tests/unit/test_target_fields.py walks the schema: a new field
of ServiceConfig fails it until every target has decided. The platform sections
(service.ecs, service.cloud_run, ...) are the target's own: each of their fields is read.
"""

# Fields every target reads (its name, port, scale, probes, secrets, who may call it).
COMMON = frozenset(
    {
        "name",
        "port",
        "gpu",
        "min_instances",
        "max_instances",
        "concurrency",
        "readiness_path",
        "access",
        "secrets",
    }
)

# target -> the common fields it reads besides COMMON.
READS: dict[str, frozenset[str]] = {
    # domain: the ALB's certificate covers it; status names https://<domain> and the
    # CNAME to create from the service's tag (services/ecs/domain.py).
    "ecs": frozenset({"cpu", "memory_mb", "domain", "certificate", "cert_file", "key_file"}),
    # domain and certificate: the ALB in front of the alias (service.lambda.endpoint: alb,
    # services/lambda_/alb.py); with the function URL they are refused (lambda_/limits.py).
    "lambda": frozenset({"cpu", "memory_mb", "domain", "certificate", "cert_file", "key_file"}),
    # domain: the global external HTTPS load balancer (services/cloud_run/load_balancer.py),
    # its certificate Google-managed or cert_file + key_file.
    "cloud_run": frozenset({"cpu", "memory_mb", "health_path", "domain", "cert_file", "key_file"}),
    # domain: bound to the production site with SNI; its certificate App Service-managed,
    # cert_file + key_file uploaded, or a Key Vault certificate (services/app_service/domain.py).
    "app_service": frozenset({"health_path", "domain", "certificate", "cert_file", "key_file"}),
}

# target -> {field: why it is refused}.
REFUSES: dict[str, dict[str, str]] = {
    "ecs": {
        "health_path": "the ALB and the container check ask service.readiness_path "
        "(service.ecs.health_check_command replaces the container check)",
    },
    "lambda": {
        "health_path": "Lambda has no liveness probe: the readiness_path gates a release",
    },
    "cloud_run": {
        "certificate": "the load balancer takes a Google-managed certificate (service.domain "
        "alone) or PEM files (service.cert_file and service.key_file)",
    },
    "app_service": {
        "cpu": "the plan's SKU sizes each instance (service.app_service.sku)",
        "memory_mb": "the plan's SKU sizes each instance (service.app_service.sku)",
    },
}


def reads(target: str) -> frozenset[str]:
    """The common service fields TARGET reads."""
    return COMMON | READS[target]
