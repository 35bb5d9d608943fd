"""The `local` provider: VMs are systemd containers on a Docker network the environment owns.

Everything is found again by Docker labels (mlops-vm/env, mlops-vm/role), so no state file
is needed. The load balancer is one more VM container that publishes HTTPS on 127.0.0.1 and
is configured by roles/haproxy_lb with the model VMs as its servers. Every VM has a fixed
address on that network (addresses.py), so the LB's servers stay right across restarts.
"""

from mlops_vm.provision.local.provider import LocalProvider

__all__ = ["LocalProvider"]
