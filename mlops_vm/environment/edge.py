"""The edge of an environment: the first proxy that sees each client's own address.

Rate limits are counted there, per client address. Which proxy that is depends on the
provider:
- local: the HAProxy load-balancer host; it sees the client's TCP source directly and
  counts every request of the environment in one table. The model hosts' Nginx behind it
  does not count again.
- clouds (and static hosts): the cloud's load balancer cannot count per client without a
  WAF, so each model host's Nginx counts, taking the client address from X-Forwarded-For
  when, and only when, the request comes from the load balancer's own networks (trusted
  proxies). A client is then limited per host: N hosts let it send up to N times the rate.

API keys are checked by the model hosts' Nginx in every environment (see nginx_proxy): the
keys stay on the hosts, never in a cloud's load-balancer configuration, and the health path
stays open to the load balancer.
"""

from typing import Any

from mlops_vm.environment.config import RateLimitConfig

# Google's front ends, the source of every request through a GCP external HTTPS load
# balancer (and of its health checks). They append the forwarding rule's address to
# X-Forwarded-For, so that address is trusted too.
GOOGLE_FRONT_END_RANGES = ("35.191.0.0/16", "130.211.0.0/22")

# Seconds over which the local edge (HAProxy) counts a client's requests.
EDGE_PERIOD_S = 10


def lb_is_the_edge(provider: str) -> bool:
    """The load-balancer tier is a proxy of ours (HAProxy) rather than a cloud's."""
    return provider == "local"


def trusted_proxies(provider: str, network_cidr: str, lb_address: str | None = None) -> list[str]:
    """Networks whose X-Forwarded-For the model hosts believe: where the LB's requests come from."""
    trusted = [network_cidr]
    if provider == "gcp":
        trusted += list(GOOGLE_FRONT_END_RANGES)
        if lb_address:
            trusted.append(f"{lb_address}/32")
    return trusted


def host_rate_limit(provider: str, rate_limit: dict[str, Any] | None) -> dict[str, Any]:
    """nginx_proxy variables of a model host: its per-client limit, unless the LB counts."""
    allowance = rate_limit or RateLimitConfig().model_dump()
    return {
        "nginx_proxy_rate_limit_enabled": bool(rate_limit) and not lb_is_the_edge(provider),
        "nginx_proxy_rate_limit": f"{int(allowance['requests_per_second'])}r/s",
        "nginx_proxy_rate_limit_burst": int(allowance["burst"]),
    }


def lb_rate_limit(rate_limit: dict[str, Any] | None) -> dict[str, Any]:
    """haproxy_lb variables: the same allowance over EDGE_PERIOD_S (0: no limit)."""
    requests = (
        int(rate_limit["requests_per_second"]) * EDGE_PERIOD_S + int(rate_limit["burst"])
        if rate_limit
        else 0
    )
    return {
        "haproxy_lb_rate_limit_requests": requests,
        "haproxy_lb_rate_limit_period": f"{EDGE_PERIOD_S}s",
    }
