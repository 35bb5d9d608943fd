"""EC2 instances: the launch settings both modes share, and the fixed-size fleet.

Every instance boots with IMDSv2 required (no token, no metadata: SSRF from the model
cannot read the instance role's credentials), an encrypted gp3 root volume, and the env
and role tags on the instance, its volume and its network interface. Fleet instances are
named <env>-<role>-<n>; growing fills the lowest free numbers, spread over the subnets,
and shrinking terminates the highest numbers first, after draining them from the load
balancer (deregistered, the deregistration delay waited out).
"""

import hashlib
import re
from typing import Any

from mlops_vm.bootstrap.user_data import user_data_bytes
from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision.aws import load_balancer, names
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.model import FleetSpec, Instance, InstanceStatus

LIVE_STATES = ("pending", "running", "stopping", "stopped")
STATUS = {
    "pending": InstanceStatus.PENDING,
    "running": InstanceStatus.RUNNING,
    "stopping": InstanceStatus.STOPPING,
    "shutting-down": InstanceStatus.STOPPING,
    "stopped": InstanceStatus.STOPPED,
    "terminated": InstanceStatus.TERMINATED,
}
ASG_TAG = "aws:autoscaling:groupName"
# The model's containers do not need the instance's credentials: one hop keeps them out.
METADATA_OPTIONS = {
    "HttpTokens": "required",
    "HttpEndpoint": "enabled",
    "HttpPutResponseHopLimit": 1,
}


def launch_settings(spec: FleetSpec, image: dict[str, Any], key_name: str | None) -> dict:
    """RunInstances / launch template fields that both modes share."""
    settings: dict[str, Any] = {
        "ImageId": image["ImageId"],
        "InstanceType": spec.instance.machine_type,
        "MetadataOptions": dict(METADATA_OPTIONS),
        "BlockDeviceMappings": [
            {
                "DeviceName": image.get("RootDeviceName") or "/dev/xvda",
                "Ebs": {
                    "VolumeSize": spec.instance.disk_gb,
                    "VolumeType": "gp3",
                    "Encrypted": True,
                    "DeleteOnTermination": True,
                },
            }
        ],
    }
    if key_name:
        settings["KeyName"] = key_name
    return settings


def instance_tags(spec: FleetSpec, name: str) -> dict[str, str]:
    tag_set = names.tag_dict(spec.env, spec.role, name, spec.instance.tags)
    tag_set[names.TAG_SSH_USER] = spec.instance.ssh_user
    return tag_set


def to_instance(raw: dict[str, Any]) -> Instance:
    tag_set = names.as_dict(raw.get("Tags"))
    name = tag_set.get("Name", raw["InstanceId"])
    if ASG_TAG in tag_set:  # a scaling group's instances share its Name tag
        name = f"{name}-{raw['InstanceId']}"
    return Instance(
        id=raw["InstanceId"],
        name=name,
        status=STATUS.get(raw["State"]["Name"], InstanceStatus.UNKNOWN),
        private_ip=raw.get("PrivateIpAddress"),
        public_ip=raw.get("PublicIpAddress"),
        zone=raw.get("Placement", {}).get("AvailabilityZone"),
        role=tag_set.get(names.TAG_ROLE, ""),
        connection="ssh",
        ssh_user=tag_set.get(names.TAG_SSH_USER),
        tags=tag_set,
    )


def describe_instances(
    ctx: AwsContext, env: str, role: str | None = None, states: tuple[str, ...] = LIVE_STATES
) -> list[dict[str, Any]]:
    filters = [*names.env_filters(env, role), *names.filters({"instance-state-name": list(states)})]
    reservations = ctx.pages(
        "ec2", "describe_instances", "Reservations", "list the instances", Filters=filters
    )
    # The tags are checked here again, whatever the filter did: these lists feed
    # terminate_instances, which must never reach another environment's instances.
    return [
        instance
        for reservation in reservations
        for instance in reservation["Instances"]
        if names.has_tags(instance.get("Tags"), env, role)
    ]


def describe_by_ids(ctx: AwsContext, instance_ids: list[str]) -> list[dict[str, Any]]:
    if not instance_ids:
        return []
    reservations = ctx.pages(
        "ec2",
        "describe_instances",
        "Reservations",
        "read the instances",
        InstanceIds=instance_ids,
    )
    return [instance for reservation in reservations for instance in reservation["Instances"]]


def list_instances(ctx: AwsContext, env: str, role: str | None = None) -> list[Instance]:
    found = [to_instance(raw) for raw in describe_instances(ctx, env, role)]
    return sorted(found, key=lambda instance: instance.name)


def fleet_members(ctx: AwsContext, spec: FleetSpec) -> list[dict[str, Any]]:
    """The fleet's own instances (a scaling group's carry its group's tag instead)."""
    return [
        raw
        for raw in describe_instances(ctx, spec.env, spec.role)
        if ASG_TAG not in names.as_dict(raw.get("Tags"))
    ]


# --- key pair ---------------------------------------------------------------------------


def key_pair_name(env: str) -> str:
    return f"mlops-vm-{env}"


def key_pair(ctx: AwsContext, env: str, name: str) -> dict[str, Any] | None:
    pairs = names.tagged_ec2(ctx, env, "describe_key_pairs", "find the key pair", "KeyPairs")
    return next((pair for pair in pairs if pair["KeyName"] == name), None)


def ensure_key_pair(ctx: AwsContext, spec: FleetSpec, log: ChangeLog) -> str | None:
    """The key pair instances get: the key_name option, or InstanceSpec.ssh_public_key
    imported under the environment's name (a public key: nothing secret leaves here)."""
    if ctx.options.key_name:
        return ctx.options.key_name
    public_key = spec.instance.ssh_public_key
    if not public_key:
        return None
    name = key_pair_name(spec.env)
    fingerprint = hashlib.sha256(public_key.strip().encode()).hexdigest()
    current = key_pair(ctx, spec.env, name)
    if current and names.as_dict(current.get("Tags")).get(names.TAG_KEY_SHA256) == fingerprint:
        return name
    log.apply(
        "update" if current else "create",
        "key_pair",
        name,
        lambda: import_key_pair(ctx, spec, name, public_key, fingerprint, replace=bool(current)),
    )
    return name


def import_key_pair(
    ctx: AwsContext, spec: FleetSpec, name: str, public_key: str, fingerprint: str, *, replace: bool
) -> None:
    if replace:
        ctx.call("ec2", "delete_key_pair", "replace the key pair", KeyName=name)
    tag_set = names.tag_dict(spec.env, spec.role, name, spec.instance.tags)
    tag_set[names.TAG_KEY_SHA256] = fingerprint
    # No client token: a retry after a lost answer adopts the pair by its (unique) name.
    ctx.create(
        "ec2",
        "import_key_pair",
        "import the SSH public key",
        adopt=lambda: key_pair(ctx, spec.env, name),
        KeyName=name,
        PublicKeyMaterial=public_key.strip().encode(),
        TagSpecifications=names.tag_specifications("key-pair", tag_set),
    )


# --- the fleet --------------------------------------------------------------------------


def index_of(raw: dict[str, Any]) -> int:
    match = re.search(r"-(\d+)$", names.as_dict(raw.get("Tags")).get("Name", ""))
    return int(match.group(1)) if match else 1_000_000


def plan_fleet(members: list[dict[str, Any]], count: int) -> tuple[list[int], list[dict[str, Any]]]:
    """(indexes to launch, instances to terminate) that make MEMBERS exactly COUNT."""
    ordered = sorted(members, key=index_of)
    surplus = ordered[count:] if len(ordered) > count else []
    kept = {index_of(raw) for raw in ordered[:count]}
    missing = max(0, count - len(ordered))
    free = [index for index in range(1, count + len(ordered) + 1) if index not in kept]
    return free[:missing], list(reversed(surplus))


def pick_subnet(subnet_ids: list[str], members: list[dict[str, Any]]) -> str:
    """The subnet with the fewest members, so the fleet stays spread over the zones."""
    load = {subnet_id: 0 for subnet_id in subnet_ids}
    for raw in members:
        if raw.get("SubnetId") in load:
            load[raw["SubnetId"]] += 1
    return min(subnet_ids, key=lambda subnet_id: (load[subnet_id], subnet_ids.index(subnet_id)))


def launch_instance(
    ctx: AwsContext,
    spec: FleetSpec,
    name: str,
    subnet_id: str,
    security_group_id: str,
    settings: dict[str, Any],
) -> dict[str, Any]:
    params: dict[str, Any] = {
        **settings,
        "MinCount": 1,
        "MaxCount": 1,
        "SubnetId": subnet_id,
        "SecurityGroupIds": [security_group_id],
        # No ClientToken here: ctx.call gives each launch one that its retries reuse.
        "TagSpecifications": [
            {"ResourceType": resource, "Tags": names.tag_list(instance_tags(spec, name))}
            for resource in ("instance", "volume", "network-interface")
        ],
    }
    if spec.instance.user_data:
        params["UserData"] = user_data_bytes(spec.instance.user_data, "aws")
    return ctx.call("ec2", "run_instances", f"launch instance {name}", **params)["Instances"][0]


def ensure_fleet_instances(
    ctx: AwsContext,
    spec: FleetSpec,
    subnet_ids: list[str],
    security_group_id: str,
    settings: dict[str, Any],
    log: ChangeLog,
) -> list[str]:
    """Exactly spec.count instances: the surplus drained, then terminated; the missing ones
    launched (spread over the subnets), then waited for until they run. Returns the ids of
    the launched ones (stand-ins in a dry run)."""
    members = fleet_members(ctx, spec)
    to_launch, to_terminate = plan_fleet(members, spec.count)
    surplus_ids = [raw["InstanceId"] for raw in to_terminate]
    load_balancer.drain_targets(ctx, spec.env, surplus_ids, log)
    log.apply_all(
        [
            Change(
                "delete",
                "instance",
                names.as_dict(raw.get("Tags")).get("Name", raw["InstanceId"]),
                raw["InstanceId"],
            )
            for raw in to_terminate
        ],
        lambda: ctx.call(
            "ec2", "terminate_instances", "terminate surplus instances", InstanceIds=surplus_ids
        ),
    )
    members = [raw for raw in members if raw not in to_terminate]
    running: list[str] = []  # launched for real: waited for until they run

    def launch(name: str) -> str:
        raw = launch_instance(
            ctx, spec, name, pick_subnet(subnet_ids, members), security_group_id, settings
        )
        members.append(raw)
        running.append(raw["InstanceId"])
        return raw["InstanceId"]

    launched = [
        log.create(
            "instance",
            name,
            lambda name=name: launch(name),
            f"{spec.instance.machine_type} {settings['ImageId']}",
            planned=names.planned("i", name),
        )
        for name in (f"{spec.env}-{spec.role}-{index}" for index in to_launch)
    ]
    wait_running(ctx, running)
    return launched


def wait_running(ctx: AwsContext, instance_ids: list[str]) -> None:
    if not instance_ids:
        return

    def all_running() -> bool:
        return {raw["State"]["Name"] for raw in describe_by_ids(ctx, instance_ids)} == {"running"}

    ctx.wait_for(all_running, f"instances {', '.join(instance_ids)} are running")


def terminate(ctx: AwsContext, instance_ids: list[str]) -> None:
    if instance_ids:
        ctx.delete(
            "ec2",
            "terminate_instances",
            "terminate the instances",
            InstanceIds=instance_ids,
        )


def wait_terminated(ctx: AwsContext, instance_ids: list[str]) -> None:
    if not instance_ids:
        return

    def all_gone() -> bool:
        raws = describe_by_ids_tolerant(ctx, instance_ids)
        return all(raw["State"]["Name"] == "terminated" for raw in raws)

    ctx.wait_for(all_gone, f"instances {', '.join(instance_ids)} are terminated")


def describe_by_ids_tolerant(ctx: AwsContext, instance_ids: list[str]) -> list[dict[str, Any]]:
    """Like describe_by_ids, but instances AWS has already forgotten count as terminated."""
    reservations = ctx.call(
        "ec2",
        "describe_instances",
        "read the instances",
        missing_ok=True,
        InstanceIds=instance_ids,
    ).get("Reservations", [])
    return [instance for reservation in reservations for instance in reservation["Instances"]]
