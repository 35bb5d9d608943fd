"""The Application Gateway (Standard_v2) in front of the fleet or scale set.

One PUT holds the whole gateway: gateway IP configuration in the dedicated subnet, a
Standard static public IP, an HTTPS listener with the certificate, an HTTP listener that
redirects to it, the backend pool, HTTPS backend settings with a /healthz probe, and one
routing rule per listener (v2 requires priorities). Parts reference each other by ARM ids
built from the gateway's id, so the body is complete before the gateway exists.

Backends join the pool from their side: each VM's NIC IP configuration references the pool
(fleet), or the scale set model does and its instances are upgraded to it (scaling group).
"""

from __future__ import annotations

from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision.azure import scaling_group
from mlops_vm.provision.azure.certificate import (
    GatewayCertificate,
    gateway_certificate,
    trusted_root_data,
)
from mlops_vm.provision.azure.client import Arm, AzureOptions, Json, ResourceType
from mlops_vm.provision.azure.instances import list_nics
from mlops_vm.provision.azure.names import (
    BACKEND_CA,
    BACKEND_POOL,
    BACKEND_SETTINGS,
    CERTIFICATE,
    FRONTEND_IP,
    FRONTEND_PORT_HTTP,
    FRONTEND_PORT_HTTPS,
    GATEWAY_IP_CONFIG,
    LISTENER_HTTP,
    LISTENER_HTTPS,
    PROBE,
    REDIRECT,
    RULE_HTTP,
    RULE_HTTPS,
    TAG_CERTIFICATE,
    gateway_child,
    name_of,
    same_id,
    tags,
)
from mlops_vm.provision.azure.network import Layout
from mlops_vm.provision.errors import reporting_changes
from mlops_vm.provision.model import (
    ROLE_LB,
    FleetResult,
    LoadBalancerResult,
    LoadBalancerSpec,
    TargetHealth,
)

SSL_POLICY = {"policyType": "Predefined", "policyName": "AppGwSslPolicy20220101"}
PROBE_INTERVAL_S = 15
PROBE_TIMEOUT_S = 10
PROBE_UNHEALTHY_THRESHOLD = 3
REQUEST_TIMEOUT_S = 60
# NIC IP configuration fields that a PUT sends back unchanged (the rest ARM computes).
NIC_IP_CONFIG_FIELDS = (
    "subnet",
    "privateIPAllocationMethod",
    "primary",
    "publicIPAddress",
    "loadBalancerBackendAddressPools",
    "applicationSecurityGroups",
)


# -- SDK calls -------------------------------------------------------------------------------


PUBLIC_IP = ResourceType("public_ip", "public IP", lambda arm: arm.network.public_ip_addresses)
GATEWAY = ResourceType(
    "application_gateway", "application gateway", lambda arm: arm.network.application_gateways
)
get_public_ip, put_public_ip = PUBLIC_IP.get, PUBLIC_IP.put
get_gateway, put_gateway = GATEWAY.get, GATEWAY.put


def put_nics(arm: Arm, group: str, bodies: dict[str, Json]) -> None:
    arm.run_all(
        "update network interface backend pools",
        arm.network.network_interfaces.begin_create_or_update,
        [(group, name, body) for name, body in bodies.items()],
    )


def backend_health(arm: Arm, group: str, name: str) -> Json:
    return arm.run(
        "read backend health", arm.network.application_gateways.begin_backend_health, group, name
    )


# -- desired state ---------------------------------------------------------------------------


def public_ip_body(layout: Layout) -> Json:
    return {
        "location": layout.location,
        "tags": tags(layout.env, ROLE_LB),
        "sku": {"name": "Standard", "tier": "Regional"},
        "properties": {"publicIPAllocationMethod": "Static", "publicIPAddressVersion": "IPv4"},
    }


def protocol(name: str) -> str:
    return "Https" if name.upper() == "HTTPS" else "Http"


def connection_draining(spec: LoadBalancerSpec) -> Json:
    """Backend settings' draining: a target leaving the pool finishes its requests first.
    ARM takes 1..3600 seconds; drain_seconds 0 turns draining off."""
    return {
        "enabled": spec.drain_seconds > 0,
        "drainTimeoutInSec": min(max(spec.drain_seconds, 1), 3600),
    }


def gateway_body(
    layout: Layout,
    spec: LoadBalancerSpec,
    options: AzureOptions,
    certificate: GatewayCertificate,
    *,
    with_secret: bool,
) -> Json:
    """The whole gateway. Without WITH_SECRET the certificate's PFX is left out: that is the
    body to compare with ARM's answer (which never shows it)."""
    names = layout.names
    gateway_id = layout.ids.gateway(names.gateway)

    def ref(collection: str, name: str) -> dict[str, str]:
        return gateway_child(gateway_id, collection, name)

    backend = protocol(spec.backend_protocol)
    settings: Json = {
        "port": spec.backend_port,
        "protocol": backend,
        "cookieBasedAffinity": "Disabled",
        "requestTimeout": REQUEST_TIMEOUT_S,
        "probe": ref("probes", PROBE),
        "connectionDraining": connection_draining(spec),
    }
    if options.backend_host_name:
        settings["hostName"] = options.backend_host_name
    else:
        settings["pickHostNameFromBackendAddress"] = True
    trusted_roots: list[Json] = []
    if options.backend_ca_file and backend == "Https":
        trusted_roots = [
            {"name": BACKEND_CA, "properties": {"data": trusted_root_data(options.backend_ca_file)}}
        ]
        settings["trustedRootCertificates"] = [ref("trustedRootCertificates", BACKEND_CA)]
    body: Json = {
        "location": layout.location,
        "tags": tags(layout.env, ROLE_LB, {TAG_CERTIFICATE: certificate.fingerprint}),
        "properties": {
            "sku": {"name": "Standard_v2", "tier": "Standard_v2"},
            "autoscaleConfiguration": {
                "minCapacity": options.gateway_min_capacity,
                "maxCapacity": options.gateway_max_capacity,
            },
            "sslPolicy": SSL_POLICY,
            "gatewayIPConfigurations": [
                {
                    "name": GATEWAY_IP_CONFIG,
                    "properties": {"subnet": {"id": layout.gateway_subnet_id}},
                }
            ],
            "frontendIPConfigurations": [
                {
                    "name": FRONTEND_IP,
                    "properties": {
                        "publicIPAddress": {"id": layout.ids.public_ip(names.public_ip)}
                    },
                }
            ],
            "frontendPorts": [
                {"name": FRONTEND_PORT_HTTPS, "properties": {"port": spec.https_port}},
                {"name": FRONTEND_PORT_HTTP, "properties": {"port": spec.http_port}},
            ],
            "sslCertificates": [
                {
                    "name": CERTIFICATE,
                    "properties": certificate.properties() if with_secret else {},
                }
            ],
            "trustedRootCertificates": trusted_roots,
            "probes": [
                {
                    "name": PROBE,
                    "properties": {
                        "protocol": backend,
                        "path": spec.health_path,
                        "interval": PROBE_INTERVAL_S,
                        "timeout": PROBE_TIMEOUT_S,
                        "unhealthyThreshold": PROBE_UNHEALTHY_THRESHOLD,
                        "pickHostNameFromBackendHttpSettings": True,
                        "match": {"statusCodes": ["200-399"]},
                    },
                }
            ],
            "backendAddressPools": [{"name": BACKEND_POOL, "properties": {}}],
            "backendHttpSettingsCollection": [{"name": BACKEND_SETTINGS, "properties": settings}],
            "httpListeners": [
                {
                    "name": LISTENER_HTTPS,
                    "properties": {
                        "frontendIPConfiguration": ref("frontendIPConfigurations", FRONTEND_IP),
                        "frontendPort": ref("frontendPorts", FRONTEND_PORT_HTTPS),
                        "protocol": "Https",
                        "sslCertificate": ref("sslCertificates", CERTIFICATE),
                    },
                },
                {
                    "name": LISTENER_HTTP,
                    "properties": {
                        "frontendIPConfiguration": ref("frontendIPConfigurations", FRONTEND_IP),
                        "frontendPort": ref("frontendPorts", FRONTEND_PORT_HTTP),
                        "protocol": "Http",
                    },
                },
            ],
            "redirectConfigurations": [
                {
                    "name": REDIRECT,
                    "properties": {
                        "redirectType": "Permanent",
                        "targetListener": ref("httpListeners", LISTENER_HTTPS),
                        "includePath": True,
                        "includeQueryString": True,
                    },
                }
            ],
            "requestRoutingRules": [
                {
                    "name": RULE_HTTPS,
                    "properties": {
                        "ruleType": "Basic",
                        "priority": 100,
                        "httpListener": ref("httpListeners", LISTENER_HTTPS),
                        "backendAddressPool": ref("backendAddressPools", BACKEND_POOL),
                        "backendHttpSettings": ref(
                            "backendHttpSettingsCollection", BACKEND_SETTINGS
                        ),
                    },
                },
                {
                    "name": RULE_HTTP,
                    "properties": {
                        "ruleType": "Basic",
                        "priority": 200,
                        "httpListener": ref("httpListeners", LISTENER_HTTP),
                        "redirectConfiguration": ref("redirectConfigurations", REDIRECT),
                    },
                },
            ],
        },
    }
    if certificate.identity_id:
        body["identity"] = {
            "type": "UserAssigned",
            "userAssignedIdentities": {certificate.identity_id: {}},
        }
    return body


def nic_with_pool(nic: Json, pool_id: str, member: bool) -> Json:
    """NIC as a PUT body with its primary IP configuration in (or out of) the pool."""
    props = nic["properties"]
    configs = []
    for ipc in props["ipConfigurations"]:
        current = ipc["properties"]
        kept = {k: current[k] for k in NIC_IP_CONFIG_FIELDS if k in current}
        if current.get("privateIPAllocationMethod") == "Static":
            kept["privateIPAddress"] = current["privateIPAddress"]
        pools = [
            {"id": p["id"]}
            for p in current.get("applicationGatewayBackendAddressPools") or []
            if not same_id(p["id"], pool_id)
        ]
        if member and (current.get("primary") or len(props["ipConfigurations"]) == 1):
            pools.append({"id": pool_id})
        kept["applicationGatewayBackendAddressPools"] = pools
        configs.append({"name": ipc["name"], "properties": kept})
    body: Json = {
        "location": nic["location"],
        "tags": nic.get("tags") or {},
        "properties": {"ipConfigurations": configs},
    }
    for name in ("networkSecurityGroup", "enableAcceleratedNetworking", "enableIPForwarding"):
        if name in props:
            body["properties"][name] = props[name]
    return body


def in_pool(nic: Json, pool_id: str) -> bool:
    return any(
        same_id(pool["id"], pool_id)
        for ipc in nic["properties"].get("ipConfigurations", [])
        for pool in ipc["properties"].get("applicationGatewayBackendAddressPools") or []
    )


# -- convergence -----------------------------------------------------------------------------


def ensure_load_balancer(
    arm: Arm, spec: LoadBalancerSpec, fleet: FleetResult, *, dry_run: bool
) -> LoadBalancerResult:
    layout = Layout.from_dict(fleet.network)
    names, group = layout.names, layout.resource_group
    gateway_id = layout.ids.gateway(names.gateway)
    pool_id = gateway_child(gateway_id, "backendAddressPools", BACKEND_POOL)["id"]

    log = ChangeLog(dry_run=dry_run)
    # A failure part-way (say at the gateway) still reports the public IP it made.
    with reporting_changes(log.changes):
        PUBLIC_IP.converge(
            arm,
            log,
            group,
            names.public_ip,
            public_ip_body(layout),
            create_detail="Standard, static",
        )
        certificate = gateway_certificate(spec.certificate, arm.options.gateway_identity_id)
        GATEWAY.converge(
            arm,
            log,
            group,
            names.gateway,
            gateway_body(layout, spec, arm.options, certificate, with_secret=False),
            sent=lambda: gateway_body(layout, spec, arm.options, certificate, with_secret=True),
            create_detail=f"Standard_v2: HTTPS :{spec.https_port}, HTTP :{spec.http_port} "
            f"-> HTTPS, probe {spec.health_path}",
        )
        if fleet.network.get("mode") == "scaling_group":
            scaling_group.attach_backend_pool(
                arm, layout, pool_id, log, capacity=int(fleet.network.get("capacity", 0))
            )
        else:
            register_fleet(arm, layout, fleet, pool_id, log)

    public_ip = get_public_ip(arm, group, names.public_ip)
    address = endpoint_address(public_ip)
    # A read, not a change: a dry run's gateway may not exist yet, and asking an existing
    # one is a long-running POST that a plan does not need.
    targets = [] if dry_run else health_of(arm, group, names.gateway)
    return LoadBalancerResult(
        endpoint=f"https://{address}" + ("" if spec.https_port == 443 else f":{spec.https_port}"),
        changes=log.changes,
        targets=targets,
        resources={
            "resource_group": group,
            "application_gateway_id": gateway_id,
            "public_ip_id": layout.ids.public_ip(names.public_ip),
            "public_ip_address": (public_ip or {}).get("properties", {}).get("ipAddress"),
            "backend_pool_id": pool_id,
            "https_listener_id": gateway_child(gateway_id, "httpListeners", LISTENER_HTTPS)["id"],
        },
    )


def endpoint_address(public_ip: Json | None) -> str:
    if public_ip is None:
        return "<public IP, allocated on create>"
    props = public_ip.get("properties", {})
    return props.get("dnsSettings", {}).get("fqdn") or props.get("ipAddress") or "<pending>"


def register_fleet(
    arm: Arm, layout: Layout, fleet: FleetResult, pool_id: str, log: ChangeLog
) -> None:
    """Fleet NICs into the pool; NICs in the pool whose VM left the fleet out of it."""
    wanted = {instance.id.lower() for instance in fleet.instances}
    changes: list[Change] = []
    bodies: dict[str, Json] = {}
    for nic in list_nics(arm, layout.resource_group):
        vm_id = (nic["properties"].get("virtualMachine") or {}).get("id", "")
        member = vm_id.lower() in wanted
        if member == in_pool(nic, pool_id):
            continue
        action = "register in" if member else "deregister from"
        changes.append(
            Change("update", "target", name_of(vm_id) or nic["name"], f"{action} backend pool")
        )
        bodies[nic["name"]] = nic_with_pool(nic, pool_id, member)
    # VMs the fleet step only planned to create (a dry run) have no NIC yet: they join too.
    joined = {change.name for change in changes}
    changes += [
        Change("update", "target", name, "register in backend pool")
        for name in fleet.network.get("new_instances", [])
        if name not in joined
    ]
    log.apply_all(changes, lambda: put_nics(arm, layout.resource_group, bodies))


# -- health ----------------------------------------------------------------------------------


def health_of(arm: Arm, group: str, gateway: str) -> list[TargetHealth]:
    report = backend_health(arm, group, gateway) or {}
    owners = NicOwners(arm)
    merged: dict[str, TargetHealth] = {}
    for pool in report.get("backendAddressPools", []):
        for settings in pool.get("backendHttpSettingsCollection", []):
            for server in settings.get("servers", []):
                target = server_health(server, owners)
                previous = merged.get(target.instance_id)
                if previous is None or (previous.healthy and not target.healthy):
                    merged[target.instance_id] = target
    return sorted(merged.values(), key=lambda t: t.instance_id)


def server_health(server: Json, owners: NicOwners) -> TargetHealth:
    ip_configuration = (server.get("ipConfiguration") or {}).get("id", "")
    instance_id = owners.instance_of(ip_configuration) or server.get("address") or "unknown"
    health = server.get("health", "Unknown")
    healthy = health == "Up"
    reason = "" if healthy else (server.get("healthProbeLog") or health)
    return TargetHealth(instance_id=instance_id, healthy=healthy, reason=reason)


class NicOwners:
    """Which instance an IP configuration belongs to (read NICs once, only when needed)."""

    def __init__(self, arm: Arm) -> None:
        self.arm = arm
        self.by_group: dict[str, dict[str, str]] = {}

    def instance_of(self, ip_configuration_id: str) -> str | None:
        if not ip_configuration_id:
            return None
        if "/virtualmachinescalesets/" in ip_configuration_id.lower():
            # .../virtualMachineScaleSets/ss/virtualMachines/3/networkInterfaces/...
            index = ip_configuration_id.lower().index("/networkinterfaces/")
            return ip_configuration_id[:index]
        nic_id = ip_configuration_id.split("/ipConfigurations/")[0]
        group = nic_id.split("/")[4]
        if group.lower() not in self.by_group:
            self.by_group[group.lower()] = {
                nic["id"].lower(): (nic["properties"].get("virtualMachine") or {}).get("id", "")
                for nic in list_nics(self.arm, group)
            }
        return self.by_group[group.lower()].get(nic_id.lower()) or nic_id
