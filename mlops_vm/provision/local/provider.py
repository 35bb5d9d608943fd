"""LocalProvider: the provider interface over the local Docker engine."""

import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from mlops_vm.localcloud import images
from mlops_vm.localcloud.docker_cli import docker
from mlops_vm.localcloud.vm import remove_vm, run_vm, storage_volume, wait_booted
from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision import model
from mlops_vm.provision.base import Provider
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.health import probe_https
from mlops_vm.provision.local import addresses, image, lb_admin, resize, scaling_group, ssh_access
from mlops_vm.provision.local import resources as res

LB_CONTAINER_PORT = 443
# Docker calls about VMs run side by side, this many at a time.
PARALLEL_VMS = 8


class LocalProvider(Provider):
    name = "local"
    # HAProxy's admin socket answers in milliseconds: a release waits no longer than needed.
    target_poll_s = 0.25

    # -- checks ---------------------------------------------------------------------------

    def check_offline(self, fleet: model.FleetSpec, lb: model.LoadBalancerSpec | None) -> None:
        if fleet.count > addresses.MAX_MODEL_INDEX:
            raise self.error(
                ErrorCode.INVALID_INPUT,
                f"fleet.count {fleet.count} is more than the local provider's "
                f"{addresses.MAX_MODEL_INDEX} VMs per environment",
                f"set fleet.count to at most {addresses.MAX_MODEL_INDEX}",
                "validate",
            )
        resize.limits(fleet.instance.machine_type)

    def validate(self, fleet: model.FleetSpec, lb: model.LoadBalancerSpec | None) -> None:
        """The offline checks, then the local cloud's (Docker): image built, port free."""
        self.check_offline(fleet, lb)
        image = fleet.instance.image or images.VM_IMAGE
        if not docker("image", "ls", "-q", image):
            raise self.error(
                ErrorCode.INVALID_INPUT,
                f"VM image {image} is not built",
                "run ./scripts/setup (it builds the local images)",
                "validate",
            )
        if lb is not None and lb.publish_port is not None:
            self.check_port_free(fleet.env, lb.publish_port)

    def check_port_free(self, env: str, port: int) -> None:
        for container in res.find_containers(env, model.ROLE_LB):
            if container.ports.get(f"{LB_CONTAINER_PORT}/tcp") == f"127.0.0.1:{port}":
                return  # ours already
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                raise self.error(
                    ErrorCode.INVALID_INPUT,
                    f"port {port} on 127.0.0.1 is already in use",
                    "choose another load_balancer.publish_port or stop what listens there",
                    "validate",
                ) from None

    # -- fleet ----------------------------------------------------------------------------

    def instance_record(self, container: res.Container, env: str) -> model.Instance:
        return model.Instance(
            id=container.name,
            name=container.name,
            status=model.InstanceStatus.RUNNING
            if container.running
            else model.InstanceStatus.STOPPED,
            private_ip=container.ips.get(res.network_name(env)),
            role=container.labels.get(model.TAG_ROLE, model.ROLE_MODEL),
            connection="ssh",
            ssh_user="root",
            tags={**container.labels, "ssh_key_file": str(ssh_access.key_file(env))},
        )

    def list_instances(self, env: str, role: str | None = None) -> list[model.Instance]:
        return [self.instance_record(c, env) for c in res.find_containers(env, role)]

    def ensure_network(self, env: str, log: ChangeLog) -> None:
        if not res.network_exists(env):
            name = res.network_name(env)
            log.create("network", name, lambda: res.create_network(env), "docker bridge network")
        # The shared registry joins it: platform wiring, not a change of the environment.
        log.follow_up(lambda: res.attach_registry(env))

    def ensure_fleet(self, spec: model.FleetSpec, *, dry_run: bool = False) -> model.FleetResult:
        if spec.mode == "scaling_group":
            return scaling_group.ensure(self, spec, dry_run=dry_run)
        log = ChangeLog(dry_run=dry_run)
        self.ensure_network(spec.env, log)
        existing = {c.index: c for c in res.find_containers(spec.env, model.ROLE_MODEL)}
        wanted = set(range(1, spec.count + 1))
        for index in sorted(existing.keys() - wanted, reverse=True):
            name = existing[index].name
            log.delete("instance", name, lambda n=name: remove_vm(n))
        image = spec.instance.image or images.VM_IMAGE
        to_create = {
            res.vm_name(spec.env, model.ROLE_MODEL, i): i for i in wanted - existing.keys()
        }
        new = sorted(to_create, key=to_create.__getitem__)
        log.apply_together(
            "create",
            "instance",
            [(name, image) for name in new],
            lambda: self.launch_all(new, lambda n: self.run_fleet_vm(spec, n, to_create[n]), image),
        )
        stopped = [
            existing[i].name for i in sorted(wanted & existing.keys()) if not existing[i].running
        ]
        log.apply_together(
            "update",
            "instance",
            [(name, "start") for name in stopped],
            lambda: self.launch_all(stopped, lambda name: docker("start", name), "start"),
        )
        log.follow_up(lambda: self.grant_ssh(spec.env, model.ROLE_MODEL))
        instances = self.list_instances(spec.env, model.ROLE_MODEL)
        network = {"network": res.network_name(spec.env)}
        if res.network_exists(spec.env):
            network["cidr"] = res.network_cidr(spec.env)
        return model.FleetResult(instances, log.changes, network)

    def surplus_instances(self, spec: model.FleetSpec) -> list[model.Instance]:
        """The VMs numbered above fleet.count, highest first (ensure_fleet's order)."""
        surplus = [
            c for c in res.find_containers(spec.env, model.ROLE_MODEL) if c.index > spec.count
        ]
        return [
            self.instance_record(c, spec.env)
            for c in sorted(surplus, key=lambda c: c.index, reverse=True)
        ]

    def drain_surplus(
        self, spec: model.FleetSpec, lb: model.LoadBalancerSpec | None, *, dry_run: bool = False
    ) -> list[Change]:
        # No HAProxy on the LB host yet (its play has not run): no request reaches a VM
        # through it, so there is nothing to drain.
        if lb is None or self.lb_servers(spec.env) is None:
            return []
        return super().drain_surplus(spec, lb, dry_run=dry_run)

    def run_fleet_vm(self, spec: model.FleetSpec, name: str, index: int) -> None:
        run_vm(
            name,
            network=res.network_name(spec.env),
            labels=res.labels(spec.env, model.ROLE_MODEL, **{res.INDEX_LABEL: str(index)}),
            image=spec.instance.image or images.VM_IMAGE,
            address=res.fixed_address(spec.env, model.ROLE_MODEL, index),
            extra_args=resize.run_args(spec.instance.machine_type),
        )

    def launch_all(
        self, names: list[str], launch: Callable[[str], object], detail: str
    ) -> tuple[list[tuple[str, str]], None]:
        """LAUNCH each VM, side by side (each is a few docker calls), then wait until all
        booted: the (name, DETAIL) of each. A failure raises: no VM counts as done."""
        with ThreadPoolExecutor(max_workers=PARALLEL_VMS) as pool:
            list(pool.map(launch, names))
        self.wait_all_booted(names)
        return [(name, detail) for name in names], None

    def grant_ssh(self, env: str, role: str) -> None:
        """Every running VM of ROLE takes the environment's key; its host key is recorded."""
        public_key = ssh_access.ensure_key(env)
        network = res.network_name(env)
        running = [
            (c.name, c.ips[network])
            for c in res.find_containers(env, role)
            if c.running and c.ips.get(network)
        ]

        def grant(vm: str) -> list[str]:
            ssh_access.authorize(vm, public_key)
            return ssh_access.read_host_key(vm)

        # Two docker execs per VM, side by side; known_hosts is written once.
        with ThreadPoolExecutor(max_workers=PARALLEL_VMS) as pool:
            keys = list(pool.map(grant, [name for name, _ in running]))
        ssh_access.record_host_keys(
            env, {address: key for (_, address), key in zip(running, keys, strict=True)}
        )

    def wait_all_booted(self, names: list[str]) -> None:
        with ThreadPoolExecutor(max_workers=PARALLEL_VMS) as pool:
            for name, state in zip(names, pool.map(wait_booted, names), strict=True):
                if state not in ("running", "degraded"):
                    raise self.error(
                        ErrorCode.INTERNAL,
                        f"{name} booted {state}",
                        f"docker exec {name} systemctl --failed",
                        "boot",
                    )

    def resize_instance(
        self, spec: model.FleetSpec, instance: model.Instance, *, dry_run: bool = False
    ) -> list[Change]:
        return resize.resize_container(instance, spec.instance.machine_type, dry_run=dry_run)

    # -- scaling group: the local stand-in for ASG / MIG / VMSS (scaling_group.py) ----------

    def ensure_release_image(
        self, fleet: model.FleetSpec, image_spec: model.ImageSpec, *, dry_run: bool = False
    ) -> tuple[model.ImageResult, list[Change]]:
        return image.ensure_release_image(fleet, image_spec, dry_run=dry_run)

    def group_status(self, env: str) -> model.GroupStatus | None:
        return scaling_group.status(self, env)

    def rollback_group(self, env: str, *, dry_run: bool = False) -> list[Change]:
        """The scaling group back to the release its last release replaced."""
        return scaling_group.rollback(env, dry_run=dry_run)

    # -- load balancer --------------------------------------------------------------------

    def ensure_load_balancer(
        self, spec: model.LoadBalancerSpec, fleet: model.FleetResult, *, dry_run: bool = False
    ) -> model.LoadBalancerResult:
        if spec.publish_port is None:
            raise self.error(
                ErrorCode.INVALID_INPUT,
                "load_balancer.publish_port is not set",
                "set the port to publish HTTPS on 127.0.0.1",
                "ensure lb",
            )
        name = res.vm_name(spec.env, model.ROLE_LB)
        binding = f"127.0.0.1:{spec.publish_port}"
        log = ChangeLog(dry_run=dry_run)
        current = res.find_containers(spec.env, model.ROLE_LB)
        if current and current[0].ports.get(f"{LB_CONTAINER_PORT}/tcp") != binding:
            log.delete("lb_host", name, lambda: remove_vm(name), "publish port changed")
            current = []

        def create() -> None:
            # The fleet step made the network (and planned it in a dry run, so it is not
            # planned twice here); an LB made without its fleet makes and records it.
            self.ensure_network(spec.env, log)
            run_vm(
                name,
                network=res.network_name(spec.env),
                labels=res.labels(spec.env, model.ROLE_LB),
                address=res.fixed_address(spec.env, model.ROLE_LB),
                extra_args=("--publish", f"{binding}:{LB_CONTAINER_PORT}"),
            )
            self.wait_all_booted([name])

        def start() -> None:
            docker("start", name)
            self.wait_all_booted([name])

        if not current:
            log.create("lb_host", name, create, f"HTTPS on {binding}")
        elif not current[0].running:
            log.update("lb_host", name, start, "start")
        log.follow_up(lambda: self.grant_ssh(spec.env, model.ROLE_LB))
        hosts = self.list_instances(spec.env, model.ROLE_LB)
        return model.LoadBalancerResult(
            endpoint=f"https://127.0.0.1:{spec.publish_port}",
            changes=log.changes,
            resources={"hosts": hosts, "network": res.network_name(spec.env)},
        )

    def lb_servers(self, env: str) -> dict[str, lb_admin.ServerState] | None:
        """The LB host's HAProxy view of its servers; None before HAProxy runs there."""
        lb_hosts = [c for c in res.find_containers(env, model.ROLE_LB) if c.running]
        if not lb_hosts:
            return None
        try:
            return lb_admin.servers(lb_hosts[0].name)
        except lb_admin.AdminUnavailable:
            return None

    def target_health(self, spec: model.LoadBalancerSpec) -> list[model.TargetHealth]:
        """The load balancer's own view (HAProxy's active health checks, drain and
        maintenance states); before the LB host is configured, a probe of each host."""
        instances = self.list_instances(spec.env, model.ROLE_MODEL)
        servers = self.lb_servers(spec.env)
        if servers is None:
            return [probe_https(instance, spec.health_path) for instance in instances]
        return [
            model.TargetHealth(
                instance.id, servers[instance.name].healthy, servers[instance.name].reason
            )
            if instance.name in servers
            else model.TargetHealth(instance.id, False, "not registered with the load balancer")
            for instance in instances
        ]

    def __init__(self, settings: model.ProviderSettings) -> None:
        super().__init__(settings)
        # The LB host's container by environment, once found (its name is fixed): a rejoin
        # asks for it to register and again to wait, a listing each time otherwise.
        self.lb_hosts: dict[str, str] = {}

    def lb_host(self, spec: model.LoadBalancerSpec, operation: str) -> str:
        """The running LB host's container of spec.env."""
        if spec.env not in self.lb_hosts:
            lb_hosts = [c for c in res.find_containers(spec.env, model.ROLE_LB) if c.running]
            if not lb_hosts:
                raise self.admin_unavailable(spec, "no running load balancer host", operation)
            self.lb_hosts[spec.env] = lb_hosts[0].name
        return self.lb_hosts[spec.env]

    def admin_unavailable(
        self, spec: model.LoadBalancerSpec, why: str, operation: str
    ) -> ProvisionError:
        return self.error(
            ErrorCode.NOT_FOUND,
            f"the load balancer of {spec.env} does not answer on its admin socket ({why})",
            f"run `mlops-vm provision {spec.env}` to configure the load balancer host",
            operation,
        )

    def lb_server(
        self, spec: model.LoadBalancerSpec, name: str, operation: str
    ) -> tuple[str, lb_admin.ServerState | None]:
        """The LB host's container and the server NAME there (None: not in the backend)."""
        lb = self.lb_host(spec, operation)
        try:
            return lb, lb_admin.servers(lb).get(name)
        except lb_admin.AdminUnavailable as error:
            raise self.admin_unavailable(spec, str(error), operation) from None

    def target_reader(
        self, spec: model.LoadBalancerSpec, instance_id: str
    ) -> Callable[[], model.TargetHealth | None]:
        """Ask HAProxy about this one server only (one docker exec per poll, not the
        container listings of target_health): a release waits on it host by host."""
        lb = self.lb_host(spec, "wait for a healthy target")

        def read() -> model.TargetHealth | None:
            try:
                server = lb_admin.servers(lb).get(instance_id)
            except lb_admin.AdminUnavailable as error:
                raise self.admin_unavailable(
                    spec, str(error), "wait for a healthy target"
                ) from None
            return (
                None
                if server is None
                else model.TargetHealth(instance_id, server.healthy, server.reason)
            )

        return read

    def deregister_target(
        self, spec: model.LoadBalancerSpec, instance: model.Instance, *, dry_run: bool = False
    ) -> list[Change]:
        """HAProxy drain (no new request; requests in flight finish), then maintenance once
        no request is left on it or spec.drain_seconds have passed."""
        lb, server = self.lb_server(spec, instance.name, "deregister target")
        if server is None or not server.registered:
            return []

        def drain_then_deregister() -> None:
            lb_admin.set_state(lb, instance.name, "drain")
            deadline = time.monotonic() + spec.drain_seconds
            while time.monotonic() < deadline:
                current = lb_admin.servers(lb).get(instance.name)
                if current is None or current.current_sessions == 0:
                    break
                time.sleep(0.2)
            lb_admin.set_state(lb, instance.name, "maint")

        log = ChangeLog(dry_run=dry_run)
        log.update("lb_target", instance.name, drain_then_deregister, "drain and deregister")
        return log.changes

    def register_target(
        self, spec: model.LoadBalancerSpec, instance: model.Instance, *, dry_run: bool = False
    ) -> list[Change]:
        """HAProxy `state ready`: the server takes requests again once its checks pass."""
        lb, server = self.lb_server(spec, instance.name, "register target")
        if server is None:
            raise self.error(
                ErrorCode.NOT_FOUND,
                f"{instance.name} is not a server of the load balancer of {spec.env}",
                f"run `mlops-vm provision {spec.env}` to add it to the load balancer",
                "register target",
            )
        if server.registered:
            return []
        log = ChangeLog(dry_run=dry_run)
        log.update(
            "lb_target",
            instance.name,
            lambda: lb_admin.set_state(lb, instance.name, "ready"),
            "register",
        )
        return log.changes

    # -- destroy --------------------------------------------------------------------------

    def destroy(self, env: str, *, dry_run: bool = False) -> list[Change]:
        log = ChangeLog(dry_run=dry_run)
        if scaling_group.group.read_config(env) is not None:
            # The autoscaler first: it would launch again what is removed below.
            log.delete(
                "scaling_group", f"mlops-vm-{env}-group", lambda: scaling_group.destroy_extras(env)
            )
        # The load balancer goes first, so it never points at removed VMs.
        containers = res.find_containers(env)
        for container in sorted(
            containers, key=lambda c: c.labels.get(model.TAG_ROLE) != model.ROLE_LB
        ):
            kind = container.labels.get(model.TAG_ROLE, "") + "_container"
            log.delete(kind, container.name, lambda n=container.name: remove_vm(n))
        # A VM's storage volume goes with it (remove_vm): not deleted, nor planned, twice.
        gone = {storage_volume(c.name) for c in containers}
        for volume in (v for v in res.find_volumes(env) if v not in gone):
            log.delete(
                "volume", volume, lambda v=volume: docker("volume", "rm", "-f", v, check=False)
            )
        if res.network_exists(env):
            log.delete("network", res.network_name(env), lambda: res.remove_network(env))
        for baked in image.env_images(env):
            log.delete("image", baked["tag"], lambda t=baked["tag"]: docker("rmi", t, check=False))
        return log.changes
