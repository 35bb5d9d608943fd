"""Filters that turn the environment's edge settings into role variables
(mlops_vm/environment/edge.py)."""

import json
from typing import Any

from mlops_vm.environment.config import LoadBalancerConfig
from mlops_vm.environment.edge import host_rate_limit, lb_rate_limit


def rate_limit(load_balancer: dict) -> dict[str, Any] | None:
    """The environment's rate limit with its defaults filled in (None: no limit)."""
    # Plain data in: Ansible hands over lazy containers.
    settings = LoadBalancerConfig.model_validate(json.loads(json.dumps(load_balancer or {})))
    return settings.rate_limit.model_dump() if settings.rate_limit else None


def mlops_vm_host_rate_limit(load_balancer: dict, provider: str) -> dict:
    """nginx_proxy rate-limit variables of a model host."""
    return host_rate_limit(provider, rate_limit(load_balancer))


def mlops_vm_lb_rate_limit(load_balancer: dict) -> dict:
    """haproxy_lb rate-limit variables of the local load-balancer host."""
    return lb_rate_limit(rate_limit(load_balancer))


class FilterModule:
    def filters(self) -> dict:
        return {
            "mlops_vm_host_rate_limit": mlops_vm_host_rate_limit,
            "mlops_vm_lb_rate_limit": mlops_vm_lb_rate_limit,
        }
