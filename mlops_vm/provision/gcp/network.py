"""VPC network, subnetwork and firewall rules of an environment (or existing ones, reused).

Networks and firewalls take no labels: they are found by their deterministic names
(`mlops-vm-<env>-net`, `-subnet`, `-allow-lb`, `-allow-ssh`). Firewalls open the service
port to Google's load-balancer ranges (health checks and the proxies of the global external
Application LB both come from there) and SSH to NetworkSpec.ssh_cidr only.
"""

from dataclasses import dataclass
from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.gcp.context import Context
from mlops_vm.provision.gcp.converge import ApiFix, apply_fix, create, delete, get_global
from mlops_vm.provision.gcp.errors import PROVIDER
from mlops_vm.provision.gcp.names import basename, description, same_link
from mlops_vm.provision.model import ROLE_NETWORK, FleetSpec, NetworkSpec

# Where Google Front Ends and health checkers connect from.
LB_SOURCE_RANGES = ("35.191.0.0/16", "130.211.0.0/22")


@dataclass(frozen=True)
class NetworkRefs:
    network: str  # self link
    subnetwork: str  # self link
    owned: bool  # created by this environment (False: NetworkSpec.existing)


def _link_or_name(value: str, make_link: Any) -> str:
    return value if "/" in value else make_link(value)


def existing_refs(ctx: Context, spec: NetworkSpec) -> NetworkRefs | None:
    """The reused network named in NetworkSpec.existing, checked to exist; None if not reused."""
    network_ref = spec.existing.get("network")
    if not network_ref:
        return None
    network_link = _link_or_name(network_ref, lambda n: ctx.links.global_("networks", n))
    network = ctx.client.get(
        f"read network {network_ref}",
        lambda s: s.networks().get(project=ctx.project, network=basename(network_link)),
    )
    if network is None:
        raise ProvisionError(
            ErrorCode.INVALID_INPUT,
            f"network {network_ref} (NetworkSpec.existing) does not exist in project {ctx.project}",
            hint="name an existing VPC network, or drop NetworkSpec.existing to create one",
            provider=PROVIDER,
            operation="validate network",
        )
    subnet_ref = spec.existing.get("subnetwork")
    if subnet_ref:
        subnet_link = _link_or_name(
            subnet_ref, lambda n: ctx.links.regional(ctx.region, "subnetworks", n)
        )
        subnet = ctx.client.get(
            f"read subnetwork {subnet_ref}",
            lambda s: s.subnetworks().get(
                project=ctx.project, region=ctx.region, subnetwork=basename(subnet_link)
            ),
        )
    else:
        in_region = [
            link for link in network.get("subnetworks", []) if f"/regions/{ctx.region}/" in link
        ]
        subnet = {"selfLink": in_region[0], "network": network["selfLink"]} if in_region else None
    if subnet is None or not same_link(subnet.get("network"), network["selfLink"]):
        raise ProvisionError(
            ErrorCode.INVALID_INPUT,
            f"no subnetwork {subnet_ref or ''} of network {network_ref} in region {ctx.region}",
            hint="set NetworkSpec.existing['subnetwork'] to a subnetwork of that network in "
            "the provider's region",
            provider=PROVIDER,
            operation="validate network",
        )
    return NetworkRefs(network["selfLink"], subnet["selfLink"], owned=False)


def ensure_network(ctx: Context, spec: NetworkSpec, log: ChangeLog) -> NetworkRefs:
    reused = existing_refs(ctx, spec)
    if reused is not None:
        return reused
    names = ctx.names
    network_link = ctx.links.global_("networks", names.network)
    subnet_link = ctx.links.regional(ctx.region, "subnetworks", names.subnetwork)
    marker = description(names.env, ROLE_NETWORK)

    network = ctx.client.get(
        f"read network {names.network}",
        lambda s: s.networks().get(project=ctx.project, network=names.network),
    )
    if network is None:
        body = {
            "name": names.network,
            "description": marker,
            "autoCreateSubnetworks": False,
            "routingConfig": {"routingMode": "REGIONAL"},
        }
        log.apply(
            "create",
            "network",
            names.network,
            lambda: ctx.client.mutate(
                f"create network {names.network}",
                lambda s: s.networks().insert(project=ctx.project, body=body),
            ),
        )

    subnet = None
    if network is not None:
        subnet = ctx.client.get(
            f"read subnetwork {names.subnetwork}",
            lambda s: s.subnetworks().get(
                project=ctx.project, region=ctx.region, subnetwork=names.subnetwork
            ),
        )
    if subnet is None:
        body = {
            "name": names.subnetwork,
            "description": marker,
            "network": network_link,
            "ipCidrRange": spec.cidr,
            "privateIpGoogleAccess": True,
        }
        log.apply(
            "create",
            "subnetwork",
            names.subnetwork,
            lambda: ctx.client.mutate(
                f"create subnetwork {names.subnetwork}",
                lambda s: s.subnetworks().insert(project=ctx.project, region=ctx.region, body=body),
            ),
            detail=spec.cidr,
        )
    elif subnet["ipCidrRange"] != spec.cidr:
        # A subnetwork's range can only grow in place; anything else means a new network.
        raise ProvisionError(
            ErrorCode.CONFLICT,
            f"subnetwork {names.subnetwork} has range {subnet['ipCidrRange']}, the inventory "
            f"asks for {spec.cidr}",
            hint="keep the existing cidr, or destroy the environment and provision again",
            provider=PROVIDER,
            operation=f"update subnetwork {names.subnetwork}",
        )
    return NetworkRefs(network_link, subnet_link, owned=True)


def _firewall_body(
    ctx: Context, name: str, network: str, source_ranges: list[str], port: int
) -> dict[str, Any]:
    return {
        "name": name,
        "description": description(ctx.names.env, ROLE_NETWORK),
        "network": network,
        "direction": "INGRESS",
        "priority": 1000,
        "sourceRanges": sorted(source_ranges),
        "allowed": [{"IPProtocol": "tcp", "ports": [str(port)]}],
        "targetTags": [ctx.names.network_tag],
    }


def _firewall_differs(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return (
        sorted(current.get("sourceRanges", [])) != wanted["sourceRanges"]
        or current.get("allowed") != wanted["allowed"]
        or sorted(current.get("targetTags", [])) != wanted["targetTags"]
    )


def ensure_firewalls(ctx: Context, fleet: FleetSpec, refs: NetworkRefs, log: ChangeLog) -> None:
    names = ctx.names
    wanted = {
        names.firewall_lb: _firewall_body(
            ctx, names.firewall_lb, refs.network, list(LB_SOURCE_RANGES), fleet.service_port
        ),
    }
    if fleet.network.ssh_cidr:
        wanted[names.firewall_ssh] = _firewall_body(
            ctx, names.firewall_ssh, refs.network, [fleet.network.ssh_cidr], 22
        )
    for name, body in wanted.items():
        _ensure_firewall(ctx, name, body, log)
    if not fleet.network.ssh_cidr:
        _ensure_firewall_absent(ctx, names.firewall_ssh, log)


def _ensure_firewall(ctx: Context, name: str, body: dict[str, Any], log: ChangeLog) -> None:
    current = get_global(ctx, "firewall", name)
    sources = ", ".join(body["sourceRanges"])
    if current is None:
        create(ctx, "firewall", body, log, detail=sources)
    elif not same_link(current.get("network"), body["network"]):
        # A firewall cannot move to another network: replace it.
        def replace() -> None:
            delete(ctx, "firewall", name)
            ctx.client.mutate(
                f"create firewall {name}",
                lambda s: s.firewalls().insert(project=ctx.project, body=body),
            )

        log.apply("update", "firewall", name, replace, detail="moved to another network")
    elif _firewall_differs(current, body):
        patch = {k: body[k] for k in ("name", "sourceRanges", "allowed", "targetTags")}
        apply_fix(ctx, "firewall", name, ApiFix("patch", patch, sources), log)


def _ensure_firewall_absent(ctx: Context, name: str, log: ChangeLog) -> None:
    if get_global(ctx, "firewall", name) is not None:
        log.delete(
            "firewall",
            name,
            lambda: delete(ctx, "firewall", name),
            "SSH closed (NetworkSpec.ssh_cidr is None)",
        )
