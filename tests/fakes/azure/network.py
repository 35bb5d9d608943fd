"""Microsoft.Network rules: virtual networks and subnets, NSGs, NICs, public IPs and
Application Gateways, with the references ARM checks and the read-only back-references
(subnet.ipConfigurations, pool.backendIPConfigurations, ...) it shows."""

from __future__ import annotations

import base64
import copy
import ipaddress
import uuid
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.fakes.azure.rules import (
    ResourceType,
    allocate_private_ip,
    find_child,
    gateways_using_subnet,
    ip_configurations,
    named_children,
    require,
    require_child_ref,
    require_optional_ref,
    same_id,
    scale_set_model_pool_ids,
    vm_using_nic,
)
from tests.fakes.azure.state import ArmError, ArmState, Json, key, ref_id

GATEWAY_COLLECTIONS = (
    "gatewayIPConfigurations",
    "sslCertificates",
    "trustedRootCertificates",
    "frontendIPConfigurations",
    "frontendPorts",
    "probes",
    "backendAddressPools",
    "backendHttpSettingsCollection",
    "httpListeners",
    "redirectConfigurations",
    "requestRoutingRules",
)
V2_SKUS = {"Standard_v2", "WAF_v2"}
# List fields ARM shows as [] when a gateway's PUT left them out, at the top and per child.
GATEWAY_EMPTY_LISTS = (
    "authenticationCertificates",
    "trustedClientCertificates",
    "sslProfiles",
    "urlPathMaps",
    "rewriteRuleSets",
    "privateLinkConfigurations",
    "privateEndpointConnections",
    "customErrorConfigurations",
    "loadDistributionPolicies",
    "backendSettingsCollection",
    "listeners",
    "routingRules",
)
GATEWAY_CHILD_EMPTY_LISTS = {
    "httpListeners": ("hostNames", "customErrorConfigurations"),
    "backendAddressPools": ("backendAddresses",),
    "backendHttpSettingsCollection": ("authenticationCertificates",),
    "redirectConfigurations": ("requestRoutingRules", "urlPathMaps", "pathRules"),
    "sslCertificates": (),
    "probes": (),
}


def subnet_users(state: ArmState, subnet_id: str) -> list[str]:
    users = [c.id for c in ip_configurations(state) if same_id(c.subnet_id, subnet_id)]
    return users + gateways_using_subnet(state, subnet_id)


class VirtualNetworks(ResourceType):
    namespace = "Microsoft.Network"
    collection = "virtualNetworks"
    child_collections = ("subnets",)

    def prepare(self, state: ArmState, rid: str, body: Json, existing: Json | None) -> Json:
        props = body.setdefault("properties", {})
        prefixes = props.get("addressSpace", {}).get("addressPrefixes") or []
        require(bool(prefixes), "InvalidAddressSpace", "addressSpace.addressPrefixes is required")
        spaces = [ipaddress.ip_network(p, strict=False) for p in prefixes]
        subnets = props.setdefault("subnets", [])
        named_children(subnets, rid, "subnets", "Microsoft.Network/virtualNetworks/subnets")
        for subnet in subnets:
            self._check_subnet(state, subnet, spaces)
        self._check_overlaps(subnets)
        kept = {s["name"].lower() for s in subnets}
        for old in (existing or {}).get("properties", {}).get("subnets", []):
            if old["name"].lower() not in kept and subnet_users(state, old["id"]):
                raise ArmError(
                    400,
                    "InUseSubnetCannotBeDeleted",
                    f"Subnet {old['name']} is in use by {subnet_users(state, old['id'])[0]} "
                    "and cannot be deleted.",
                )
        return body

    @staticmethod
    def _check_subnet(state: ArmState, subnet: Json, spaces: list) -> None:
        props = subnet["properties"]
        prefix = props.get("addressPrefix")
        require(bool(prefix), "InvalidRequestFormat", f"subnet {subnet['name']} has no prefix")
        network = ipaddress.ip_network(prefix, strict=False)
        require(
            any(network.subnet_of(space) for space in spaces),
            "NetcfgSubnetRangeOutsideVnet",
            f"Subnet '{subnet['name']}' is not valid because its IP address range is outside "
            "the IP address range of virtual network.",
        )
        nsg = ref_id(props.get("networkSecurityGroup"))
        require_optional_ref(state, nsg, subnet["id"])

    @staticmethod
    def _check_overlaps(subnets: list[Json]) -> None:
        networks = [
            (s["name"], ipaddress.ip_network(s["properties"]["addressPrefix"], strict=False))
            for s in subnets
        ]
        for i, (name, network) in enumerate(networks):
            for other_name, other in networks[i + 1 :]:
                require(
                    not network.overlaps(other),
                    "NetcfgSubnetRangesOverlap",
                    f"Subnet '{name}' overlaps with subnet '{other_name}'.",
                )

    def render(self, state: ArmState, stored: Json, query: dict[str, str]) -> Json:
        shown = copy.deepcopy(stored)
        for subnet in shown["properties"].get("subnets", []):
            self._add_subnet_backrefs(state, subnet)
        return shown

    @staticmethod
    def _add_subnet_backrefs(state: ArmState, subnet: Json) -> None:
        props = subnet["properties"]
        users = [c.id for c in ip_configurations(state) if same_id(c.subnet_id, subnet["id"])]
        if users:
            props["ipConfigurations"] = [{"id": user} for user in users]
        gateways = gateways_using_subnet(state, subnet["id"])
        if gateways:
            props["applicationGatewayIPConfigurations"] = [{"id": g} for g in gateways]

    def check_delete(self, state: ArmState, stored: Json) -> None:
        for subnet in stored["properties"].get("subnets", []):
            users = subnet_users(state, subnet["id"])
            require(
                not users,
                "InUseSubnetCannotBeDeleted",
                f"Subnet {subnet['name']} is in use by {users[0] if users else ''} and cannot "
                "be deleted. In order to delete the subnet, delete all the resources within "
                "the subnet.",
            )

    def get_child(self, state: ArmState, stored: Json, collection: str, name: str) -> Json | None:
        for subnet in self.render(state, stored, {})["properties"]["subnets"]:
            if subnet["name"].lower() == name.lower():
                return subnet
        return None

    def list_children(self, state: ArmState, stored: Json, collection: str) -> list[Json] | None:
        return self.render(state, stored, {})["properties"]["subnets"]

    def put_child(
        self, state: ArmState, stored: Json, collection: str, name: str, body: Json
    ) -> tuple[Json, bool]:
        subnets = stored["properties"]["subnets"]
        others = [s for s in subnets if s["name"].lower() != name.lower()]
        created = len(others) == len(subnets)
        child = {"name": name, "properties": copy.deepcopy(body.get("properties", {}))}
        candidate = copy.deepcopy(stored)
        candidate["properties"]["subnets"] = [*copy.deepcopy(others), child]
        prepared = self.prepare(state, stored["id"], candidate, stored)
        stored["properties"]["subnets"] = prepared["properties"]["subnets"]
        return self.get_child(state, stored, collection, name) or {}, created

    def delete_child(self, state: ArmState, stored: Json, collection: str, name: str) -> bool:
        subnets = stored["properties"]["subnets"]
        for subnet in subnets:
            if subnet["name"].lower() == name.lower():
                users = subnet_users(state, subnet["id"])
                require(not users, "InUseSubnetCannotBeDeleted", f"Subnet {name} is in use.")
                subnets.remove(subnet)
                return True
        return False


DEFAULT_SECURITY_RULES = [
    ("AllowVnetInBound", "Inbound", 65000, "VirtualNetwork", "Allow"),
    ("AllowAzureLoadBalancerInBound", "Inbound", 65001, "AzureLoadBalancer", "Allow"),
    ("DenyAllInBound", "Inbound", 65500, "*", "Deny"),
    ("AllowVnetOutBound", "Outbound", 65000, "VirtualNetwork", "Allow"),
    ("AllowInternetOutBound", "Outbound", 65001, "*", "Allow"),
    ("DenyAllOutBound", "Outbound", 65500, "*", "Deny"),
]


class NetworkSecurityGroups(ResourceType):
    namespace = "Microsoft.Network"
    collection = "networkSecurityGroups"
    child_collections = ("securityRules",)

    def prepare(self, state: ArmState, rid: str, body: Json, existing: Json | None) -> Json:
        rules = body.setdefault("properties", {}).setdefault("securityRules", [])
        named_children(
            rules, rid, "securityRules", "Microsoft.Network/networkSecurityGroups/securityRules"
        )
        priorities: set[tuple[str, int]] = set()
        for rule in rules:
            props = rule["properties"]
            require(
                props.get("protocol") in {"Tcp", "Udp", "Icmp", "Esp", "Ah", "*"},
                "SecurityRuleInvalidProtocol",
                f"Security rule {rule['name']} has an invalid protocol.",
            )
            require(
                props.get("access") in {"Allow", "Deny"}
                and props.get("direction") in {"Inbound", "Outbound"},
                "InvalidRequestFormat",
                f"Security rule {rule['name']} needs access and direction.",
            )
            priority = props.get("priority")
            require(
                isinstance(priority, int) and 100 <= priority <= 4096,
                "SecurityRuleInvalidPriority",
                f"Security rule {rule['name']} has invalid Priority. Value provided: "
                f"{priority}. Allowed range 100-4096.",
            )
            require(
                (props["direction"], priority) not in priorities,
                "SecurityRuleConflict",
                f"Security rule {rule['name']} conflicts with another rule: same priority "
                "and direction.",
            )
            priorities.add((props["direction"], priority))
            require(
                bool(props.get("sourceAddressPrefix") or props.get("sourceAddressPrefixes"))
                and bool(props.get("destinationPortRange") or props.get("destinationPortRanges")),
                "SecurityRuleParameterContainsUnsupportedValue",
                f"Security rule {rule['name']} needs a source prefix and destination ports.",
            )
        return body

    def render(self, state: ArmState, stored: Json, query: dict[str, str]) -> Json:
        shown = copy.deepcopy(stored)
        props = shown["properties"]
        props["defaultSecurityRules"] = [
            {
                "id": f"{stored['id']}/defaultSecurityRules/{name}",
                "name": name,
                "properties": {
                    "protocol": "*",
                    "sourceAddressPrefix": source,
                    "destinationAddressPrefix": "*",
                    "sourcePortRange": "*",
                    "destinationPortRange": "*",
                    "access": access,
                    "priority": priority,
                    "direction": direction,
                    "provisioningState": "Succeeded",
                },
            }
            for name, direction, priority, source, access in DEFAULT_SECURITY_RULES
        ]
        subnets, nics = self._users(state, stored["id"])
        if subnets:
            props["subnets"] = [{"id": s} for s in subnets]
        if nics:
            props["networkInterfaces"] = [{"id": n} for n in nics]
        return shown

    @staticmethod
    def _users(state: ArmState, nsg_id: str) -> tuple[list[str], list[str]]:
        subnets = [
            subnet["id"]
            for vnet in state.of_type("Microsoft.Network/virtualNetworks")
            for subnet in vnet["properties"].get("subnets", [])
            if same_id(ref_id(subnet["properties"].get("networkSecurityGroup")), nsg_id)
        ]
        nics = [
            nic["id"]
            for nic in state.of_type("Microsoft.Network/networkInterfaces")
            if same_id(ref_id(nic["properties"].get("networkSecurityGroup")), nsg_id)
        ]
        return subnets, nics

    def check_delete(self, state: ArmState, stored: Json) -> None:
        subnets, nics = self._users(state, stored["id"])
        users = subnets + nics
        require(
            not users,
            "InUseNetworkSecurityGroupCannotBeDeleted",
            f"Network security group {stored['id']} cannot be deleted because it is in use by "
            f"the following resources: {users}.",
        )


class NetworkInterfaces(ResourceType):
    namespace = "Microsoft.Network"
    collection = "networkInterfaces"
    child_collections = ("ipConfigurations",)

    def prepare(self, state: ArmState, rid: str, body: Json, existing: Json | None) -> Json:
        props = body.setdefault("properties", {})
        configs = props.get("ipConfigurations") or []
        require(bool(configs), "InvalidRequestFormat", "a NIC needs an IP configuration")
        named_children(
            configs, rid, "ipConfigurations", "Microsoft.Network/networkInterfaces/ipConfigurations"
        )
        old = {
            c["name"].lower(): c["properties"]
            for c in (existing or {}).get("properties", {}).get("ipConfigurations", [])
        }
        for config in configs:
            self._check_ip_configuration(state, rid, config, old.get(config["name"].lower()))
        if len(configs) == 1:
            configs[0]["properties"]["primary"] = True
        nsg = ref_id(props.get("networkSecurityGroup"))
        require_optional_ref(state, nsg, rid)
        old_mac = (existing or {}).get("properties", {}).get("macAddress")
        props["macAddress"] = old_mac or "00-0D-3A-" + uuid.uuid4().bytes[:3].hex("-").upper()
        return body

    @staticmethod
    def _check_ip_configuration(
        state: ArmState, nic_id: str, config: Json, old: Json | None
    ) -> None:
        props = config["properties"]
        subnet_id = ref_id(props.get("subnet"))
        require_child_ref(state, subnet_id, nic_id)
        assert subnet_id is not None
        require(
            not gateways_using_subnet(state, subnet_id),
            "SubnetIsUsedByApplicationGateway",
            f"Subnet {subnet_id} is used by an Application Gateway and cannot hold other "
            "resources.",
        )
        require(
            props.get("publicIPAddress") is None or state.get(props["publicIPAddress"]["id"]),
            "InvalidResourceReference",
            f"Public IP referenced by {nic_id} was not found.",
        )
        for pool in props.get("applicationGatewayBackendAddressPools", []):
            require_child_ref(state, ref_id(pool), nic_id)
        props.setdefault("privateIPAllocationMethod", "Dynamic")
        if old and same_id(ref_id(old.get("subnet")), subnet_id):
            props["privateIPAddress"] = old["privateIPAddress"]
        else:
            props["privateIPAddress"] = allocate_private_ip(state, subnet_id)
        props["privateIPAddressVersion"] = "IPv4"

    def render(self, state: ArmState, stored: Json, query: dict[str, str]) -> Json:
        shown = copy.deepcopy(stored)
        vm = vm_using_nic(state, stored["id"])
        if vm is not None:
            shown["properties"]["virtualMachine"] = {"id": vm["id"]}
        return shown

    def check_delete(self, state: ArmState, stored: Json) -> None:
        vm = vm_using_nic(state, stored["id"])
        require(
            vm is None,
            "NicInUse",
            f"Network Interface {stored['id']} is used by existing resource {vm and vm['id']}. "
            "In order to delete the network interface, it must be dissociated from the "
            "resource.",
        )

    def get_child(self, state: ArmState, stored: Json, collection: str, name: str) -> Json | None:
        return find_child(state, f"{stored['id']}/{collection}/{name}")


class PublicIPAddresses(ResourceType):
    namespace = "Microsoft.Network"
    collection = "publicIPAddresses"

    def prepare(self, state: ArmState, rid: str, body: Json, existing: Json | None) -> Json:
        props = body.setdefault("properties", {})
        sku = body.get("sku", {}).get("name", "Basic")
        method = props.get("publicIPAllocationMethod", "Dynamic")
        require(
            not (sku == "Standard" and method != "Static"),
            "StandardSkuPublicIPAddressesCannotBeDynamic",
            "Standard sku publicIp /subscriptions/... must be allocated statically.",
        )
        old = (existing or {}).get("properties", {}).get("ipAddress")
        if old:
            props["ipAddress"] = old
        elif method == "Static":
            state.public_ip_counter += 1
            # TEST-NET-3 (RFC 5737): documentation addresses, never routable.
            props["ipAddress"] = f"203.0.113.{state.public_ip_counter % 250 + 1}"
        label = props.get("dnsSettings", {}).get("domainNameLabel")
        if label:
            props["dnsSettings"]["fqdn"] = f"{label}.{body['location']}.cloudapp.azure.com"
        return body

    def render(self, state: ArmState, stored: Json, query: dict[str, str]) -> Json:
        shown = copy.deepcopy(stored)
        user = self._user(state, stored["id"])
        if user:
            shown["properties"]["ipConfiguration"] = {"id": user}
        return shown

    @staticmethod
    def _user(state: ArmState, ip_id: str) -> str | None:
        for gateway in state.of_type("Microsoft.Network/applicationGateways"):
            for frontend in gateway["properties"].get("frontendIPConfigurations", []):
                if same_id(ref_id(frontend["properties"].get("publicIPAddress")), ip_id):
                    return frontend["id"]
        return None

    def check_delete(self, state: ArmState, stored: Json) -> None:
        user = self._user(state, stored["id"])
        require(
            user is None,
            "PublicIPAddressCannotBeDeleted",
            f"Public IP address {stored['id']} can not be deleted since it is still allocated "
            f"to resource {user}.",
        )


class ApplicationGateways(ResourceType):
    namespace = "Microsoft.Network"
    collection = "applicationGateways"
    child_collections = GATEWAY_COLLECTIONS

    def prepare(self, state: ArmState, rid: str, body: Json, existing: Json | None) -> Json:
        props = body.setdefault("properties", {})
        sku = props.get("sku", {})
        require(
            sku.get("name") in V2_SKUS and sku.get("tier") in V2_SKUS,
            "ApplicationGatewaySkuNotSupported",
            f"Application Gateway SKU {sku.get('name')!r} is not supported here; use "
            "Standard_v2 or WAF_v2.",
        )
        require(
            "capacity" in sku or "autoscaleConfiguration" in props,
            "ApplicationGatewayCapacityRequired",
            "A v2 Application Gateway needs sku.capacity or autoscaleConfiguration.",
        )
        for collection in GATEWAY_COLLECTIONS:
            items = props.setdefault(collection, [])
            named_children(
                items, rid, collection, f"Microsoft.Network/applicationGateways/{collection}"
            )
            for item in items:
                child = item.setdefault("properties", {})
                for name in GATEWAY_CHILD_EMPTY_LISTS.get(collection, ()):
                    child.setdefault(name, [])
        for name in GATEWAY_EMPTY_LISTS:
            props.setdefault(name, [])
        self._check_internal_references(rid, props)
        self._check_gateway_ip(state, rid, props)
        self._check_frontends(state, rid, props)
        self._check_certificates(state, rid, body, existing)
        self._check_listeners(props)
        self._check_probes_and_settings(props)
        self._check_rules(props)
        self._check_removed_pools(state, props, existing)
        props["operationalState"] = "Running"
        return body

    @staticmethod
    def _check_internal_references(rid: str, props: Json) -> None:
        known = {key(item["id"]) for c in GATEWAY_COLLECTIONS for item in props[c]}
        prefix = key(rid) + "/"
        for collection in GATEWAY_COLLECTIONS:
            for item in props[collection]:
                for value in item["properties"].values():
                    refs = value if isinstance(value, list) else [value]
                    for ref in refs:
                        target = ref_id(ref)
                        if target and key(target).startswith(prefix):
                            require(
                                key(target) in known,
                                "InvalidResourceReference",
                                f"Resource {target} referenced by resource {item['id']} was "
                                "not found. Please make sure that the referenced resource "
                                "exists, and that both resources are in the same region.",
                            )

    @staticmethod
    def _check_gateway_ip(state: ArmState, rid: str, props: Json) -> None:
        configs = props["gatewayIPConfigurations"]
        require(
            len(configs) == 1,
            "ApplicationGatewayMustHaveOneGatewayIpConfiguration",
            "An Application Gateway needs exactly one gateway IP configuration.",
        )
        subnet_id = ref_id(configs[0]["properties"].get("subnet"))
        require_child_ref(state, subnet_id, rid)
        assert subnet_id is not None
        others = [c.id for c in ip_configurations(state) if same_id(c.subnet_id, subnet_id)]
        other_gateways = [
            g for g in gateways_using_subnet(state, subnet_id) if not key(g).startswith(key(rid))
        ]
        require(
            not others and not other_gateways,
            "ApplicationGatewaySubnetCannotBeUsedByOtherResources",
            f"Subnet {subnet_id} cannot be used for application gateway {rid} since it is "
            f"already used by other resources: {(others + other_gateways)[:1]}.",
        )

    @staticmethod
    def _check_frontends(state: ArmState, rid: str, props: Json) -> None:
        require(
            bool(props["frontendIPConfigurations"]),
            "ApplicationGatewayFrontendIpConfigurationRequired",
            "An Application Gateway needs a frontend IP configuration.",
        )
        for frontend in props["frontendIPConfigurations"]:
            ip_id = ref_id(frontend["properties"].get("publicIPAddress"))
            if ip_id is None:
                continue
            public_ip = state.get(ip_id)
            require(
                public_ip is not None,
                "InvalidResourceReference",
                f"Resource {ip_id} referenced by resource {rid} was not found.",
            )
            assert public_ip is not None
            require(
                public_ip.get("sku", {}).get("name") == "Standard"
                and public_ip["properties"].get("publicIPAllocationMethod") == "Static",
                "ApplicationGatewayV2PublicIpRequiresStandardStaticIp",
                "A v2 Application Gateway needs a Standard SKU, statically allocated public IP.",
            )
            user = PublicIPAddresses._user(state, ip_id)
            require(
                user is None or key(user).startswith(key(rid)),
                "PublicIPAddressInUse",
                f"Public IP {ip_id} is already used by {user}.",
            )
        ports = [p["properties"].get("port") for p in props["frontendPorts"]]
        require(
            len(ports) == len(set(ports)),
            "ApplicationGatewayDuplicateFrontendPort",
            "Two frontend ports use the same port number.",
        )

    @staticmethod
    def _check_certificates(state: ArmState, rid: str, body: Json, existing: Json | None) -> None:
        known = state.private_of(rid).setdefault("certificates", {})
        previous = {
            c["name"].lower()
            for c in (existing or {}).get("properties", {}).get("sslCertificates", [])
        }
        for cert in body["properties"]["sslCertificates"]:
            props = cert["properties"]
            name = cert["name"].lower()
            if props.get("keyVaultSecretId"):
                identity = body.get("identity") or {}
                require(
                    identity.get("type") in {"UserAssigned", "SystemAssigned, UserAssigned"}
                    and bool(identity.get("userAssignedIdentities")),
                    "ApplicationGatewayKeyVaultSecretRequiresUserAssignedIdentity",
                    "Certificates from Key Vault need a user-assigned managed identity on the "
                    "Application Gateway.",
                )
                known[name] = {"keyVaultSecretId": props["keyVaultSecretId"]}
            elif props.get("data"):
                known[name] = _parse_pfx(props["data"], props.get("password"))
            else:
                # ARM keeps an existing certificate when a PUT names it without its data,
                # which is what a GET-modify-PUT sends back.
                require(
                    name in previous and name in known,
                    "ApplicationGatewaySslCertificateDataMustBeSpecified",
                    f"Data must be specified for Certificate {cert['id']}.",
                )
            props.pop("password", None)
            if "data" in props:
                state.private_of(rid).setdefault("pfx", {})[name] = props.pop("data")

    @staticmethod
    def _check_listeners(props: Json) -> None:
        seen = set()
        for listener in props["httpListeners"]:
            lp = listener["properties"]
            protocol = lp.get("protocol")
            require(
                protocol in {"Http", "Https"},
                "InvalidRequestFormat",
                f"Listener {listener['name']} needs protocol Http or Https.",
            )
            require(
                ref_id(lp.get("frontendIPConfiguration")) is not None
                and ref_id(lp.get("frontendPort")) is not None,
                "ApplicationGatewayHttpListenerMustReferenceFrontend",
                f"Listener {listener['name']} must reference a frontend IP and port.",
            )
            require(
                (protocol == "Https") == (lp.get("sslCertificate") is not None),
                "ApplicationGatewayHttpsListenerMustReferenceSslCert",
                f"Listener {listener['name']}: an Https listener needs an SSL certificate and "
                "an Http listener must not have one.",
            )
            identity = (
                key(lp["frontendIPConfiguration"]["id"]),
                key(lp["frontendPort"]["id"]),
                lp.get("hostName"),
            )
            require(
                identity not in seen,
                "ApplicationGatewayDuplicateHttpListener",
                f"Listener {listener['name']} uses the same frontend, port and host as another.",
            )
            seen.add(identity)

    @staticmethod
    def _check_probes_and_settings(props: Json) -> None:
        for probe in props["probes"]:
            pp = probe["properties"]
            require(
                str(pp.get("path", "")).startswith("/"),
                "ApplicationGatewayProbePathIsInvalid",
                f"Probe {probe['name']}: the path must start with '/'.",
            )
            require(
                pp.get("protocol") in {"Http", "Https"},
                "InvalidRequestFormat",
                f"Probe {probe['name']} needs protocol Http or Https.",
            )
            require(
                bool(pp.get("host")) or pp.get("pickHostNameFromBackendHttpSettings") is True,
                "ApplicationGatewayProbeHostNameIsRequired",
                f"Probe {probe['name']}: set host or pickHostNameFromBackendHttpSettings.",
            )
        for settings in props["backendHttpSettingsCollection"]:
            sp = settings["properties"]
            require(
                isinstance(sp.get("port"), int) and sp.get("protocol") in {"Http", "Https"},
                "InvalidRequestFormat",
                f"Backend settings {settings['name']} need a port and a protocol.",
            )

    @staticmethod
    def _check_rules(props: Json) -> None:
        priorities: set[int] = set()
        listeners: set[str] = set()
        for rule in props["requestRoutingRules"]:
            rp = rule["properties"]
            priority = rp.get("priority")
            require(
                priority is not None,
                "ApplicationGatewayRequestRoutingRulePriorityCannotBeEmpty",
                f"Priority for the request routing rule {rule['id']} cannot be empty. All "
                "request routing rules should have a priority defined starting from api-version "
                "2021-08-01",
            )
            require(
                1 <= priority <= 20000 and priority not in priorities,
                "ApplicationGatewayRequestRoutingRulePriorityInvalid",
                f"Rule {rule['name']}: priority must be unique and within 1-20000.",
            )
            priorities.add(priority)
            listener = ref_id(rp.get("httpListener"))
            require(
                listener is not None and key(listener) not in listeners,
                "ApplicationGatewayHttpListenerUsedByMultipleRules",
                f"Rule {rule['name']} needs its own listener.",
            )
            listeners.add(key(listener or ""))
            forwards = rp.get("backendAddressPool") is not None
            require(
                forwards == (rp.get("backendHttpSettings") is not None)
                and forwards != (rp.get("redirectConfiguration") is not None),
                "ApplicationGatewayRequestRoutingRuleInvalidTarget",
                f"Rule {rule['name']} needs either a pool with backend settings or a redirect.",
            )

    @staticmethod
    def _check_removed_pools(state: ArmState, props: Json, existing: Json | None) -> None:
        kept = {key(p["id"]) for p in props["backendAddressPools"]}
        for pool in (existing or {}).get("properties", {}).get("backendAddressPools", []):
            if key(pool["id"]) not in kept:
                users = pool_users(state, pool["id"])
                require(
                    not users,
                    "ApplicationGatewayBackendAddressPoolInUse",
                    f"Backend address pool {pool['id']} is in use by {users[:1]} and cannot be "
                    "deleted.",
                )

    def render(self, state: ArmState, stored: Json, query: dict[str, str]) -> Json:
        shown = copy.deepcopy(stored)
        props = shown["properties"]
        known = state.private_of(stored["id"]).get("certificates", {})
        for cert in props.get("sslCertificates", []):
            info = known.get(cert["name"].lower(), {})
            if "publicCertData" in info:
                cert["properties"]["publicCertData"] = info["publicCertData"]
        for pool in props.get("backendAddressPools", []):
            members = [c.id for c in ip_configurations(state) if _in_pool(c.pool_ids, pool["id"])]
            if members:
                pool["properties"]["backendIPConfigurations"] = [{"id": m} for m in members]
        return shown

    def check_delete(self, state: ArmState, stored: Json) -> None:
        for pool in stored["properties"].get("backendAddressPools", []):
            users = pool_users(state, pool["id"])
            require(
                not users,
                "ApplicationGatewayBackendAddressPoolInUse",
                f"Backend address pool {pool['id']} is in use by {users[:1]}; remove the "
                "references before deleting the gateway.",
            )

    def get_child(self, state: ArmState, stored: Json, collection: str, name: str) -> Json | None:
        for item in self.render(state, stored, {})["properties"].get(collection, []):
            if item["name"].lower() == name.lower():
                return item
        return None

    def list_children(self, state: ArmState, stored: Json, collection: str) -> list[Json] | None:
        return self.render(state, stored, {})["properties"].get(collection, [])

    def action(
        self, state: ArmState, stored: Json, name: str, body: Json
    ) -> Callable[[], Json | None]:
        require(name.lower() == "backendhealth", "InvalidResourceType", f"no action {name}")

        def health() -> Json:
            pools = []
            shown = self.render(state, stored, {})
            addresses = {c.id.lower(): c.private_ip for c in ip_configurations(state)}
            for pool in shown["properties"]["backendAddressPools"]:
                servers = []
                for member in pool["properties"].get("backendIPConfigurations", []):
                    address = addresses.get(member["id"].lower())
                    status = state.backend_health.get(
                        member["id"].lower(), state.backend_health.get(address or "", "Up")
                    )
                    server = {"address": address, "ipConfiguration": member, "health": status}
                    if status != "Up":
                        server["healthProbeLog"] = "Received invalid status code: 502."
                    servers.append(server)
                pools.append(
                    {
                        "backendAddressPool": {"id": pool["id"]},
                        "backendHttpSettingsCollection": [
                            {"backendHttpSettings": {"id": s["id"]}, "servers": servers}
                            for s in shown["properties"]["backendHttpSettingsCollection"]
                        ],
                    }
                )
            return {"backendAddressPools": pools}

        return health


def _in_pool(pool_ids: list[str], pool_id: str) -> bool:
    return any(same_id(p, pool_id) for p in pool_ids)


def pool_users(state: ArmState, pool_id: str) -> list[str]:
    users = [c.id for c in ip_configurations(state) if _in_pool(c.pool_ids, pool_id)]
    users += [owner for pool, owner in scale_set_model_pool_ids(state) if same_id(pool, pool_id)]
    return users


def _parse_pfx(data: str, password: str | None) -> Json:
    try:
        raw = base64.b64decode(data, validate=True)
        _, certificate, _ = pkcs12.load_key_and_certificates(
            raw, password.encode() if password else None
        )
    except ValueError as error:
        raise ArmError(
            400,
            "ApplicationGatewaySslCertificateDataMustBeValid",
            f"Data or password for certificate is invalid: {error}",
        ) from None
    require(
        certificate is not None,
        "ApplicationGatewaySslCertificateDataMustBeValid",
        "The PFX holds no certificate.",
    )
    assert certificate is not None
    der = certificate.public_bytes(serialization.Encoding.DER)
    return {
        "publicCertData": base64.b64encode(der).decode(),
        "sha256": certificate.fingerprint(hashes.SHA256()).hex(),
        "subject": certificate.subject.rfc4514_string(),
        "not_after": certificate.not_valid_after_utc.isoformat(),
        "is_x509": isinstance(certificate, x509.Certificate),
    }
