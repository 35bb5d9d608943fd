"""`fleet.mode: scaling_group` on the local provider: converge, roll back, report.

`provision` bakes the release's image (image.py, reused by fingerprint), records the group's
settings (group.py), launches the first instances when the group has none, and makes sure
its autoscaler runs (autoscaler.py). A new release changes the group's image: the autoscaler
rolls the instances to it one at a time and provision waits until it has. `rollback` sets
the image the last release replaced, through the same roll.
"""

import hashlib
import time
from dataclasses import replace
from typing import Any, Protocol

import yaml

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.local import autoscaler, group, image, lb_admin
from mlops_vm.provision.local import resources as res
from mlops_vm.provision.model import (
    ROLE_MODEL,
    FleetResult,
    FleetSpec,
    GroupInstance,
    GroupStatus,
    ImageSpec,
    Instance,
    ProviderSettings,
    ScalingActivity,
)


class LocalCloud(Protocol):
    """What this module uses of LocalProvider (which imports this module)."""

    settings: ProviderSettings

    def ensure_network(self, env: str, log: ChangeLog) -> None: ...

    def error(self, code: ErrorCode, message: str, hint: str, operation: str) -> ProvisionError: ...

    def list_instances(self, env: str, role: str | None = None) -> list[Instance]: ...

    def lb_servers(self, env: str) -> dict[str, lb_admin.ServerState] | None: ...


# Provider option `autoscaler` (provider.options.autoscaler): the pace of the local
# autoscaler, and how many release images are kept.
TIMING_OPTIONS = (
    "window_s",
    "scale_out_cooldown_s",
    "scale_in_cooldown_s",
    "interval_s",
    "drain_s",
    "health_timeout_s",
)


def release_of(user_data: str) -> tuple[str, str]:
    """(fingerprint, release) of the boot configuration: everything baked in (roles,
    non-secret variables, the run script), never the secrets."""
    files = image.boot_files(user_data)
    digest = hashlib.sha256()
    for name in sorted(files):
        if name != "secrets.yml":
            digest.update(name.encode() + b"\0" + files[name] + b"\0")
    variables = yaml.safe_load(files["vars.yml"])
    reference = variables.get("model_service_image_digest") or variables.get(
        "model_service_image_tag", "latest"
    )
    separator = "@" if "model_service_image_digest" in variables else ":"
    return digest.hexdigest(), f"{variables['model_service_image']}{separator}{reference}"


def wanted_config(spec: FleetSpec, image_id: str, release: str, options: dict[str, Any]):
    scaling = spec.autoscaling
    return group.GroupConfig(
        env=spec.env,
        image=image_id,
        release=release,
        min_size=scaling.min_size,
        max_size=scaling.max_size,
        desired=min(max(spec.count, scaling.min_size), scaling.max_size),
        machine_type=spec.instance.machine_type,
        target_requests_per_instance=scaling.target_requests_per_instance,
        target_cpu_percent=scaling.target_cpu_percent,
        **{key: float(options[key]) for key in TIMING_OPTIONS if key in options},
    )


def ensure(provider: LocalCloud, spec: FleetSpec, *, dry_run: bool) -> FleetResult:
    options = dict(provider.settings.options.get("autoscaler") or {})
    log = ChangeLog(dry_run=dry_run)
    provider.ensure_network(spec.env, log)
    if not spec.instance.user_data:
        raise provider.error(
            ErrorCode.INVALID_INPUT,
            "a local scaling group needs its boot configuration (user-data)",
            "provision the environment with mlops-vm provision",
            "ensure scaling group",
        )
    fingerprint, release = release_of(spec.instance.user_data)
    baked, changes = image.ensure_release_image(
        spec,
        ImageSpec(spec.env, release, fingerprint, keep_images=int(options.get("keep_images", 3))),
        dry_run=dry_run,
    )
    log.extend(changes)
    current = group.read_config(spec.env)
    wanted = wanted_config(spec, baked.image_id, release, options)
    if current is None:
        new = wanted
    else:
        rolled = group.with_image(current, baked.image_id, release)
        new = replace(
            wanted,
            **{k: getattr(rolled, k) for k in ("image", "release", "desired")},
            previous_image=rolled.previous_image,
            previous_release=rolled.previous_release,
        )
    name = f"mlops-vm-{spec.env}-group"
    if current is None:
        log.create("scaling_group", name, lambda: group.write_config(new), f"{release}")
    elif new != current:
        rolls = new.image != current.image

        def update() -> None:
            group.write_config(new)
            if rolls:
                wait_rolled(spec.env, new)

        detail = f"{current.release} -> {new.release}" if rolls else "settings"
        log.update("scaling_group", name, update, detail)
    members = group.instances(spec.env)
    if not members:
        indexes = list(range(1, new.desired + 1))
        names = [res.vm_name(spec.env, ROLE_MODEL, i) for i in indexes]
        log.apply_together(
            "create",
            "instance",
            [(n, release) for n in names],
            lambda: launch_first(new, indexes),
        )
    if autoscaler.running_pid(spec.env) is None:
        log.create("autoscaler", spec.env, lambda: autoscaler.start(spec.env), "local ASG stand-in")
    instances = provider.list_instances(spec.env, ROLE_MODEL)
    network = {"network": res.network_name(spec.env), "scaling_group": name}
    if res.network_exists(spec.env):
        network["cidr"] = res.network_cidr(spec.env)
    return FleetResult(instances, log.changes, network)


def launch_first(config: group.GroupConfig, indexes: list[int]) -> tuple[list, None]:
    """The group's first instances, side by side; they join the LB when it is configured
    (its configuration lists them, or the autoscaler adds them)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(len(indexes), 1)) as pool:
        names = list(pool.map(lambda i: group.launch(config, i), indexes))
    return [(name, config.release) for name in names], None


def wait_rolled(env: str, config: group.GroupConfig) -> None:
    """Until every instance runs CONFIG's image and serves (the autoscaler rolls them)."""
    if group.lb_host(env) is None:
        return
    limit = (config.health_timeout_s + config.drain_s + 30) * max(config.max_size, 1) + 60
    deadline = time.monotonic() + limit
    while True:
        state = group.read_state(env)
        members = group.instances(env)
        if members and all(
            c.labels.get(group.IMAGE_LABEL) == config.image
            and state.lifecycle.get(c.name) == "in_service"
            for c in members
        ):
            return
        if time.monotonic() > deadline:
            raise ProvisionError(
                ErrorCode.TIMEOUT,
                f"the scaling group of {env} did not roll to {config.release} within {limit:.0f}s",
                hint=f"see {group.state_path(env).with_name('autoscaler.log')}",
                provider="local",
                operation="roll scaling group",
            )
        time.sleep(1)


def rollback(env: str, *, dry_run: bool = False) -> list:
    """The group back to the image the last release replaced, rolled like a release."""
    config = group.read_config(env)
    if config is None or not config.previous_image:
        raise ProvisionError(
            ErrorCode.NOT_FOUND,
            f"the scaling group of {env} has no earlier release to roll back to",
            hint="a rollback needs a release before the current one",
            provider="local",
            operation="rollback",
        )
    target = group.with_image(config, config.previous_image, config.previous_release or "")
    log = ChangeLog(dry_run=dry_run)

    def roll() -> None:
        group.write_config(target)
        wait_rolled(env, target)

    log.update(
        "scaling_group", f"mlops-vm-{env}-group", roll, f"{config.release} -> {target.release}"
    )
    return log.changes


def status(provider: LocalCloud, env: str) -> GroupStatus | None:
    config = group.read_config(env)
    if config is None:
        return None
    state = group.read_state(env)
    servers = provider.lb_servers(env) or {}
    rows = []
    for container in group.instances(env):
        server = servers.get(container.name)
        lifecycle = state.lifecycle.get(container.name) or (
            "in_service" if server and server.healthy else "pending"
        )
        rows.append(
            GroupInstance(
                id=container.name,
                zone=None,
                release=container.labels.get(group.RELEASE_LABEL),
                lifecycle=lifecycle,  # type: ignore[arg-type]
                lb_healthy=server.healthy if server and server.registered else None,
                detail=server.reason if server else "not in the load balancer",
            )
        )
    return GroupStatus(
        name=f"mlops-vm-{env}-group",
        min_size=config.min_size,
        desired=state.desired or config.desired,
        max_size=config.max_size,
        release=config.release,
        previous_release=config.previous_release,
        instances=tuple(rows),
        activities=tuple(ScalingActivity(**entry) for entry in state.activities),
    )


def destroy_extras(env: str) -> None:
    """What is not a container of the environment: the autoscaler and the group's files
    (stopped first: it would launch again what destroy removes)."""
    autoscaler.stop(env)
    group.forget(env)
