"""StaticProvider: the provider interface over a fixed list of SSH hosts."""

import shlex
import socket
import subprocess

from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision.base import Provider
from mlops_vm.provision.errors import ErrorCode
from mlops_vm.provision.health import probe_https
from mlops_vm.provision.model import (
    ROLE_MODEL,
    FleetResult,
    FleetSpec,
    Instance,
    InstanceStatus,
    LoadBalancerResult,
    LoadBalancerSpec,
    TargetHealth,
)


def reachable(address: str, port: int, timeout_s: float = 3.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout_s):
            return True
    except OSError:
        return False


class StaticProvider(Provider):
    name = "static"

    @property
    def hosts(self) -> list[dict]:
        return list(self.settings.options.get("hosts", []))

    def validate(self, fleet: FleetSpec, lb: LoadBalancerSpec | None) -> None:
        self.check_offline(fleet, lb)

    def check_offline(self, fleet: FleetSpec, lb: LoadBalancerSpec | None) -> None:
        if not self.hosts:
            raise self.error(
                ErrorCode.INVALID_INPUT, "no hosts configured", "list them under fleet.hosts"
            )

    def list_instances(self, env: str, role: str | None = None) -> list[Instance]:
        if role not in (None, ROLE_MODEL):
            return []
        return [
            Instance(
                id=host["name"],
                name=host["name"],
                status=InstanceStatus.RUNNING
                if reachable(host["address"], host.get("port", 22))
                else InstanceStatus.UNKNOWN,
                private_ip=host["address"],
                connection="ssh",
                ssh_user=self.settings.options.get("ssh_user"),
                tags={"ssh_port": str(host.get("port", 22))},
            )
            for host in self.hosts
        ]

    def ensure_fleet(self, spec: FleetSpec, *, dry_run: bool = False) -> FleetResult:
        return FleetResult(self.list_instances(spec.env), [], {})

    def ensure_load_balancer(
        self, spec: LoadBalancerSpec, fleet: FleetResult, *, dry_run: bool = False
    ) -> LoadBalancerResult:
        first = fleet.instances[0].address if fleet.instances else "unknown"
        port = "" if spec.https_port == 443 else f":{spec.https_port}"
        return LoadBalancerResult(endpoint=f"https://{first}{port}", resources={"hosts": []})

    def target_health(self, spec: LoadBalancerSpec) -> list[TargetHealth]:
        return [probe_https(i, spec.health_path) for i in self.list_instances(spec.env)]

    # -- releases: your load balancer, through your commands ------------------------------

    def run_hook(self, option: str, instance: Instance, dry_run: bool) -> list[Change]:
        """Run the command the environment gives for OPTION (provider.options.drain_command /
        register_command) on this machine, with {name} and {address} filled in. Without
        one, there is no load balancer of ours to change: the in-host swap keeps serving."""
        command = self.settings.options.get(option)
        if not command:
            return []
        argv = [
            part.format(name=instance.name, address=instance.address)
            for part in shlex.split(command)
        ]

        def run() -> None:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,  # a hook, not a session: it reads nothing of ours
                capture_output=True,
                text=True,
                check=False,
                timeout=600,
            )
            if done.returncode != 0:
                raise self.error(
                    ErrorCode.INTERNAL,
                    f"{option} for {instance.name} exited {done.returncode}: "
                    f"{(done.stderr or done.stdout).strip()[-500:]}",
                    f"check provider.options.{option}",
                    option,
                )

        log = ChangeLog(dry_run=dry_run)
        log.update("lb_target", instance.name, run, option.removesuffix("_command"))
        return log.changes

    def deregister_target(
        self, spec: LoadBalancerSpec, instance: Instance, *, dry_run: bool = False
    ) -> list[Change]:
        return self.run_hook("drain_command", instance, dry_run)

    def register_target(
        self, spec: LoadBalancerSpec, instance: Instance, *, dry_run: bool = False
    ) -> list[Change]:
        return self.run_hook("register_command", instance, dry_run)

    def destroy(self, env: str, *, dry_run: bool = False) -> list[Change]:
        return []  # the hosts are yours: nothing was created, nothing is deleted
