"""The `static` provider: hosts you already have, reached over SSH. Nothing is launched.

`ensure_fleet` only reports the configured hosts; the same roles then configure them. There
is no managed load balancer: the endpoint is the first host's Nginx, and target health is
each host's /healthz.
"""

from mlops_vm.provision.static.provider import StaticProvider

__all__ = ["StaticProvider"]
