"""What differs per kind of resource: checks, defaults, side effects and custom methods.

The real API's behaviour that the provider depends on, kept honest:
- instances: machine type offered in the zone, a boot disk from an existing image, IPs
  assigned, boot disk created (and deleted with the instance), STAGING before RUNNING;
- managed instance groups: an instance group beside them, instances created from the
  template, resize, PROACTIVE rolling replacement when the template changes, not stable
  until polled; autoscalers keep the size within min/max;
- unmanaged instance groups: members in the same zone and network, listInstances;
- load balancing: health check rules, backend services that need a health check (instance
  groups) or refuse one (serverless NEGs), serverless NEGs only in their Cloud Run
  service's region, URL maps with exactly one default, certificates parsed, forwarding
  rules on reserved addresses;
- getHealth answers from `ComputeApi.health` (default: RUNNING instances are HEALTHY).
"""

import copy
import ipaddress
import random
import re
import string
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.fakes.gcp.api import Call, ComputeApi, Hooks
from tests.fakes.gcp.catalog import MACHINE_TYPES
from tests.fakes.gcp.errors import ApiError, already_exists, invalid, not_found, required
from tests.fakes.gcp.images import own_image
from tests.fakes.gcp.state import ResourcePath, link, now_rfc3339, parse_path, to_path

_IMAGE_PATH = re.compile(r"projects/([^/]+)/global/images/(?:family/([^/]+)|([^/]+))")
_MIG_DESCRIPTION = (
    "This instance group is controlled by Instance Group Manager '{name}'. To modify "
    "instances in this group, use the Instance Group Manager API: "
    "https://cloud.google.com/compute/docs/reference/latest/instanceGroupManagers"
)


class Behaviours:
    """Registers the per-collection hooks and custom methods on a ComputeApi."""

    def __init__(self, api: ComputeApi) -> None:
        self.api = api
        self.store = api.store
        self.catalog = api.catalog
        api.hooks.update(
            {
                "networks": Hooks(prepare=self.prepare_network),
                "subnetworks": Hooks(
                    check=self.check_subnetwork,
                    prepare=self.prepare_subnetwork,
                    created=self.subnetwork_created,
                    deleting=self.subnetwork_deleting,
                ),
                "firewalls": Hooks(check=self.check_firewall, prepare=self.prepare_firewall),
                "instances": Hooks(
                    prepare=self.prepare_instance,
                    created=self.instance_created,
                    deleting=self.instance_deleting,
                    render=self.render_instance,
                ),
                "instanceTemplates": Hooks(check=self.check_template),
                "instanceGroupManagers": Hooks(
                    check=self.check_mig,
                    prepare=self.prepare_mig,
                    created=self.mig_created,
                    changed=self.mig_changed,
                    blockers=self.mig_blockers,
                    deleting=self.mig_deleting,
                    render=self.render_mig,
                ),
                "autoscalers": Hooks(
                    check=self.check_autoscaler,
                    prepare=self.prepare_autoscaler,
                    created=self.autoscaler_applied,
                    changed=self.autoscaler_changed,
                    deleting=self.autoscaler_deleting,
                ),
                "instanceGroups": Hooks(
                    prepare=self.prepare_group,
                    blockers=self.group_blockers,
                    render=self.render_group,
                ),
                "healthChecks": Hooks(
                    check=self.check_health_check, prepare=self.prepare_health_check
                ),
                "backendServices": Hooks(
                    check=self.check_backend_service, prepare=self.prepare_backend_service
                ),
                "networkEndpointGroups": Hooks(check=self.check_neg),
                "urlMaps": Hooks(check=self.check_url_map, prepare=self.prepare_fingerprinted),
                "sslCertificates": Hooks(
                    check=self.check_certificate, prepare=self.prepare_certificate
                ),
                "targetHttpsProxies": Hooks(
                    check=self.check_https_proxy, prepare=self.prepare_fingerprinted
                ),
                "targetHttpProxies": Hooks(
                    check=self.check_http_proxy, prepare=self.prepare_fingerprinted
                ),
                "forwardingRules": Hooks(
                    check=self.check_forwarding_rule, prepare=self.prepare_forwarding_rule
                ),
                "addresses": Hooks(prepare=self.prepare_address, render=self.render_address),
            }
        )
        for scope in ("instanceGroupManagers", "regionInstanceGroupManagers"):
            api.custom[f"compute.{scope}.resize"] = self.resize_mig
            api.custom[f"compute.{scope}.setInstanceTemplate"] = self.set_mig_template
            api.custom[f"compute.{scope}.listManagedInstances"] = self.list_managed_instances
            api.custom[f"compute.{scope}.listErrors"] = self.list_mig_errors
        for scope in ("instanceGroups", "regionInstanceGroups"):
            api.custom[f"compute.{scope}.listInstances"] = self.list_group_instances
            api.custom[f"compute.{scope}.setNamedPorts"] = self.set_named_ports
        api.custom.update(
            {
                "compute.instanceGroups.addInstances": self.add_instances,
                "compute.instanceGroups.removeInstances": self.remove_instances,
                "compute.backendServices.getHealth": self.get_health,
                "compute.targetHttpsProxies.setUrlMap": lambda call: api.set_fields(
                    call, {"urlMap": call.body.get("urlMap")}
                ),
                "compute.targetHttpProxies.setUrlMap": lambda call: api.set_fields(
                    call, {"urlMap": call.body.get("urlMap")}
                ),
                "compute.targetHttpsProxies.setSslCertificates": lambda call: api.set_fields(
                    call, {"sslCertificates": call.body.get("sslCertificates", [])}
                ),
                "compute.globalForwardingRules.setTarget": lambda call: api.set_fields(
                    call, {"target": call.body.get("target")}
                ),
            }
        )

    # -- shared helpers ------------------------------------------------------------------

    def fingerprint(self, body: dict[str, Any], *keys: str) -> None:
        for key in keys or ("fingerprint",):
            self.store.fingerprint(body, key)

    def resolve_image(self, value: str | None, where: str, project: str) -> str:
        if not value:
            raise required(where)
        path = to_path(value, project)
        match = _IMAGE_PATH.fullmatch(path or "")
        if match is None:
            raise invalid(f"Invalid value for field '{where}': '{value}'. The URL is malformed.")
        image_project, family, name = match.groups()
        found = self.catalog.image_name(image_project, family=family, name=name) or own_image(
            self.store, image_project, family=family, name=name
        )
        if found is None:
            raise not_found(path or value)
        return link(f"projects/{image_project}/global/images/{found}")

    def require(self, body: dict[str, Any], key: str, where: str = "resource") -> Any:
        if body.get(key) in (None, "", []):
            raise required(f"{where}.{key}")
        return body[key]

    def prepare_fingerprinted(self, call: Call, where: ResourcePath, body: dict) -> None:
        self.fingerprint(body)

    # -- networks ------------------------------------------------------------------------

    def prepare_network(self, call: Call, where: ResourcePath, body: dict) -> None:
        body.setdefault("autoCreateSubnetworks", True)
        body.setdefault("routingConfig", {"routingMode": "REGIONAL"})
        body["subnetworks"] = []

    def check_subnetwork(self, call: Call, where: ResourcePath, body: dict) -> None:
        network = self.require(body, "network")
        cidr = self.require(body, "ipCidrRange")
        try:
            wanted = ipaddress.ip_network(cidr)
        except ValueError:
            raise invalid(
                f"Invalid value for field 'resource.ipCidrRange': '{cidr}'. Invalid IPCidrRange."
            ) from None
        for path, other in self.store.resources.items():
            if parse_path(path).collection != "subnetworks" or other.get("network") != network:
                continue
            if other["name"] != body["name"] and wanted.overlaps(
                ipaddress.ip_network(other["ipCidrRange"])
            ):
                raise invalid(
                    f"Invalid IPCidrRange: {cidr} conflicts with existing subnetwork "
                    f"'{other['name']}' in region '{parse_path(path).region}'."
                )

    def prepare_subnetwork(self, call: Call, where: ResourcePath, body: dict) -> None:
        network = ipaddress.ip_network(body["ipCidrRange"])
        body["gatewayAddress"] = str(network.network_address + 1)
        self.fingerprint(body)

    def subnetwork_created(self, where: ResourcePath, resource: dict) -> None:
        network = self.store.find(to_path(resource["network"], where.project) or "")
        if network is not None:
            network["subnetworks"].append(resource["selfLink"])

    def subnetwork_deleting(self, where: ResourcePath, resource: dict) -> None:
        network = self.store.find(to_path(resource["network"], where.project) or "")
        if network is not None and resource["selfLink"] in network["subnetworks"]:
            network["subnetworks"].remove(resource["selfLink"])

    def check_firewall(self, call: Call, where: ResourcePath, body: dict) -> None:
        if not body.get("network"):
            default = f"projects/{where.project}/global/networks/default"
            if default not in self.store.resources:
                raise not_found(default)
        if not body.get("allowed") and not body.get("denied"):
            raise required("resource.allowed")
        for cidr in body.get("sourceRanges", []):
            try:
                ipaddress.ip_network(cidr)
            except ValueError:
                raise invalid(
                    f"Invalid value for field 'resource.sourceRanges': '{cidr}'. "
                    "Must be a CIDR address range."
                ) from None

    def prepare_firewall(self, call: Call, where: ResourcePath, body: dict) -> None:
        body.setdefault("network", link(f"projects/{where.project}/global/networks/default"))
        body.setdefault("direction", "INGRESS")
        body.setdefault("priority", 1000)
        body.setdefault("disabled", False)
        body.setdefault("logConfig", {"enable": False})

    # -- instances -----------------------------------------------------------------------

    def prepare_instance(self, call: Call | None, where: ResourcePath, body: dict) -> None:
        zone = where.zone or ""
        machine_type = self.require(body, "machineType")
        path = to_path(machine_type, where.project) or ""
        match = re.fullmatch(r"projects/[^/]+/zones/([^/]+)/machineTypes/([^/]+)", path)
        if match is None or match[1] != zone or not self.catalog.offers(zone, match[2]):
            name = match[2] if match else machine_type
            raise invalid(
                f"Invalid value for field 'resource.machineType': '{machine_type}'. "
                f"Machine type with name '{name}' does not exist in zone '{zone}'."
            )
        body["machineType"] = link(path)
        self._prepare_disks(where, body)
        self._prepare_interfaces(where, body)
        body.setdefault("metadata", {})
        body["metadata"]["kind"] = "compute#metadata"
        self.fingerprint(body["metadata"])
        body.setdefault("tags", {})
        self.fingerprint(body["tags"])
        body.setdefault("labels", {})
        body.setdefault("scheduling", {"automaticRestart": True, "onHostMaintenance": "MIGRATE"})
        body["status"] = "PROVISIONING"
        self.fingerprint(body, "fingerprint", "labelFingerprint")

    def _prepare_disks(self, where: ResourcePath, body: dict) -> None:
        disks = body.get("disks") or []
        if not any(disk.get("boot") for disk in disks):
            raise invalid(
                "Invalid value for field 'resource.disks': ''. Boot disk must be specified."
            )
        for index, disk in enumerate(disks):
            params = disk.get("initializeParams")
            if params is None:
                continue
            at = f"resource.disks[{index}].initializeParams.sourceImage"
            params["sourceImage"] = self.resolve_image(params.get("sourceImage"), at, where.project)
            disk_name = params.get("diskName") or body["name"]
            disk_path = f"projects/{where.project}/zones/{where.zone}/disks/{disk_name}"
            if disk_path in self.store.resources:
                raise already_exists(disk_path)
            disk.update(
                kind="compute#attachedDisk",
                index=index,
                deviceName=disk_name,
                source=link(disk_path),
                type="PERSISTENT",
                mode="READ_WRITE",
            )
            disk.setdefault("autoDelete", True)

    def _prepare_interfaces(self, where: ResourcePath, body: dict) -> None:
        interfaces = body.get("networkInterfaces") or []
        if not interfaces:
            raise required("resource.networkInterfaces")
        region = self.catalog.region_of(where.zone or "")
        for index, nic in enumerate(interfaces):
            subnet = self.store.find(to_path(nic.get("subnetwork") or "", where.project) or "")
            if subnet is not None:
                if parse_path(to_path(subnet["selfLink"], "") or "").region != region:
                    raise invalid(
                        f"Invalid value for field 'resource.networkInterfaces[{index}]"
                        f".subnetwork': '{nic['subnetwork']}'. Subnetwork must be in region "
                        f"'{region}'."
                    )
                if nic.get("network") and nic["network"] != subnet["network"]:
                    raise invalid("Subnetwork does not belong to the network of the interface.")
                nic["network"] = subnet["network"]
            elif not nic.get("network"):
                raise required(f"resource.networkInterfaces[{index}].network")
            cidr = subnet["ipCidrRange"] if subnet else "10.128.0.0/20"
            nic.update(
                kind="compute#networkInterface",
                name=f"nic{index}",
                networkIP=self.store.new_private_ip(cidr),
            )
            for config in nic.get("accessConfigs", []):
                config.setdefault("type", "ONE_TO_ONE_NAT")
                config.setdefault("name", "External NAT")
                config.update(
                    kind="compute#accessConfig",
                    natIP=self.store.new_public_ip(),
                    networkTier="PREMIUM",
                )

    def instance_created(self, where: ResourcePath, resource: dict) -> None:
        resource["status"] = "STAGING"
        resource.setdefault("_reads_until_running", 1)
        for disk in resource["disks"]:
            params = disk.get("initializeParams")
            if params is None:
                continue
            disk_path = to_path(disk["source"], where.project) or ""
            self.store.put(
                disk_path,
                {
                    "name": disk_path.rsplit("/", 1)[1],
                    "sizeGb": str(params.get("diskSizeGb", 10)),
                    "sourceImage": params["sourceImage"],
                    "labels": dict(params.get("labels", {})),
                    "type": link(
                        f"projects/{where.project}/zones/{where.zone}/diskTypes/"
                        f"{params.get('diskType', 'pd-balanced').rsplit('/', 1)[-1]}"
                    ),
                    "status": "READY",
                    "users": [resource["selfLink"]],
                },
                kind="compute#disk",
            )
            self.fingerprint(self.store.resources[disk_path], "labelFingerprint")

    def instance_deleting(self, where: ResourcePath, resource: dict) -> None:
        for disk in resource.get("disks", []):
            if disk.get("autoDelete"):
                self.store.remove(to_path(disk["source"], where.project) or "")
        for group in self.store.resources.values():
            if resource["selfLink"] in group.get("_members", []):
                group["_members"].remove(resource["selfLink"])
            if where.path in group.get("_instances", []):
                group["_instances"].remove(where.path)

    def render_instance(self, where: ResourcePath, resource: dict) -> dict:
        rendered = self.store.render(resource)
        if resource.get("_reads_until_running", 0) > 0:
            resource["_reads_until_running"] -= 1
            if resource["_reads_until_running"] == 0:
                resource["status"] = "RUNNING"
        return rendered

    # -- instance templates and managed instance groups ------------------------------------

    def check_template(self, call: Call, where: ResourcePath, body: dict) -> None:
        properties = self.require(body, "properties")
        machine_type = self.require(properties, "machineType", "resource.properties")
        if machine_type not in MACHINE_TYPES:
            raise invalid(
                f"Invalid value for field 'resource.properties.machineType': '{machine_type}'. "
                "Machine type does not exist."
            )
        disks = properties.get("disks") or []
        if not any(disk.get("boot") for disk in disks):
            raise invalid(
                "Invalid value for field 'resource.properties.disks': ''. "
                "Boot disk must be specified."
            )
        for index, disk in enumerate(disks):
            params = disk.get("initializeParams")
            if params is not None:
                self.resolve_image(
                    params.get("sourceImage"),
                    f"resource.properties.disks[{index}].initializeParams.sourceImage",
                    where.project,
                )
        if not properties.get("networkInterfaces"):
            raise required("resource.properties.networkInterfaces")

    def _mig_template(self, resource: dict) -> str | None:
        versions = resource.get("versions") or []
        if versions:
            return versions[0].get("instanceTemplate")
        return resource.get("instanceTemplate")

    def _mig_zones(self, where: ResourcePath, resource: dict) -> list[str]:
        if where.zone:
            return [where.zone]
        configured = [
            z["zone"].rsplit("/", 1)[-1]
            for z in (resource.get("distributionPolicy") or {}).get("zones", [])
        ]
        return configured or list(self.catalog.regions[where.region or ""][:3])

    def check_mig(self, call: Call, where: ResourcePath, body: dict) -> None:
        if not self._mig_template(body):
            raise required("resource.instanceTemplate")
        self.require(body, "baseInstanceName")
        if where.region:
            for config in (body.get("distributionPolicy") or {}).get("zones", []):
                zone = config["zone"].rsplit("/", 1)[-1]
                if self.catalog.region_of(zone) != where.region:
                    raise invalid(
                        f"Invalid value for field 'resource.distributionPolicy.zones': "
                        f"'{config['zone']}'. Zone must be in region '{where.region}'."
                    )
        policy = body.get("updatePolicy") or {}
        surge = (policy.get("maxSurge") or {}).get("fixed")
        unavailable = (policy.get("maxUnavailable") or {}).get("fixed")
        if surge == 0 and unavailable == 0:
            raise invalid("At least one of maxSurge or maxUnavailable must be greater than 0.")

    def prepare_mig(self, call: Call, where: ResourcePath, body: dict) -> None:
        group_path = f"projects/{where.project}/{where.scope}/instanceGroups/{body['name']}"
        if group_path in self.store.resources:
            raise already_exists(group_path)
        zones = self._mig_zones(where, body)
        if where.region:
            body["distributionPolicy"] = {
                **(body.get("distributionPolicy") or {}),
                "zones": [{"zone": link(f"projects/{where.project}/zones/{z}")} for z in zones],
            }
        policy = {
            "type": "PROACTIVE",
            "minimalAction": "REPLACE",
            "maxSurge": {"fixed": len(zones)},
            "maxUnavailable": {"fixed": len(zones)},
        }
        body["updatePolicy"] = {**policy, **(body.get("updatePolicy") or {})}
        template = self._mig_template(body)
        body["instanceTemplate"] = template
        body.setdefault("versions", [{"name": "0", "instanceTemplate": template}])
        body["instanceGroup"] = link(group_path)
        body.setdefault("namedPorts", [])
        body["_instances"] = []
        self.fingerprint(body)

    def mig_created(self, where: ResourcePath, resource: dict) -> None:
        template = self.store.get(to_path(self._mig_template(resource) or "", "") or "")
        nic = (template["properties"].get("networkInterfaces") or [{}])[0]
        group_path = to_path(resource["instanceGroup"], "") or ""
        group = {
            "name": resource["name"],
            "description": _MIG_DESCRIPTION.format(name=resource["name"]),
            "namedPorts": copy.deepcopy(resource.get("namedPorts", [])),
            "network": nic.get("network"),
            "subnetwork": nic.get("subnetwork"),
            "_manager": where.path,
        }
        self.store.put(group_path, group, kind="compute#instanceGroup")
        self.fingerprint(group)
        self.scale_mig(where, resource, int(resource["targetSize"]))

    def _new_managed_instance(self, where: ResourcePath, mig: dict, zone: str) -> str:
        template_link = self._mig_template(mig) or ""
        template = self.store.get(to_path(template_link, "") or "")
        properties = copy.deepcopy(template["properties"])
        suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=4))
        name = f"{mig['baseInstanceName']}-{suffix}"
        path = f"projects/{where.project}/zones/{zone}/instances/{name}"
        metadata = properties.get("metadata") or {}
        metadata["items"] = [
            *metadata.get("items", []),
            {"key": "instance-template", "value": template_link},
            {"key": "created-by", "value": mig["selfLink"]},
        ]
        body = {
            "name": name,
            "machineType": f"zones/{zone}/machineTypes/{properties['machineType']}",
            "disks": properties.get("disks", []),
            "networkInterfaces": properties.get("networkInterfaces", []),
            "metadata": metadata,
            "labels": properties.get("labels", {}),
            "tags": properties.get("tags", {}),
            "serviceAccounts": properties.get("serviceAccounts", []),
        }
        instance_where = parse_path(path)
        self.prepare_instance(None, instance_where, body)
        resource = self.store.put(path, body, kind="compute#instance")
        resource["_reads_until_running"] = 0
        self.instance_created(instance_where, resource)
        resource["status"] = "RUNNING"
        return path

    def scale_mig(self, where: ResourcePath, mig: dict, size: int) -> None:
        instances: list[str] = mig["_instances"]
        zones = self._mig_zones(where, mig)
        while len(instances) < size:
            counts = {z: sum(f"/zones/{z}/" in p for p in instances) for z in zones}
            zone = min(zones, key=lambda z: counts[z])
            instances.append(self._new_managed_instance(where, mig, zone))
        while len(instances) > size:
            self._delete_managed_instance(instances.pop())
        mig["targetSize"] = size
        mig["_unstable_reads"] = 1

    def _delete_managed_instance(self, path: str) -> None:
        resource = self.store.find(path)
        if resource is not None:
            self.instance_deleting(parse_path(path), resource)
            self.store.remove(path)

    def mig_changed(self, where: ResourcePath, before: dict, after: dict) -> None:
        versions_changed = before.get("versions") != after.get("versions")
        if versions_changed and after.get("versions"):
            after["instanceTemplate"] = after["versions"][0]["instanceTemplate"]
        elif before.get("instanceTemplate") != after.get("instanceTemplate"):
            after["versions"] = [{"name": "0", "instanceTemplate": after["instanceTemplate"]}]
        group = self.store.find(to_path(after["instanceGroup"], "") or "")
        if group is not None:
            group["namedPorts"] = copy.deepcopy(after.get("namedPorts", []))
        skip_rollout = after.pop("_skip_rollout", False)
        proactive = (after.get("updatePolicy") or {}).get("type") == "PROACTIVE"
        rollout = proactive and not skip_rollout
        if self._mig_template(before) != self._mig_template(after) and rollout:
            size = len(after["_instances"])
            for path in list(after["_instances"]):
                self._delete_managed_instance(path)
            after["_instances"] = []
            self.scale_mig(where, after, size)
        if int(after.get("targetSize", 0)) != len(after["_instances"]):
            self.scale_mig(where, after, int(after["targetSize"]))
        after["_unstable_reads"] = 1

    def mig_blockers(self, where: ResourcePath, resource: dict) -> list[str]:
        return self.store.users_of(to_path(resource["instanceGroup"], "") or "")

    def mig_deleting(self, where: ResourcePath, resource: dict) -> None:
        for path in list(resource["_instances"]):
            self._delete_managed_instance(path)
        self.store.remove(to_path(resource["instanceGroup"], "") or "")

    def render_mig(self, where: ResourcePath, resource: dict) -> dict:
        unstable = resource.get("_unstable_reads", 0) > 0
        rendered = self.store.render(resource)
        rendered["targetSize"] = int(resource.get("targetSize", 0))
        rendered["currentActions"] = {
            "none": 0 if unstable else len(resource["_instances"]),
            "creating": len(resource["_instances"]) if unstable else 0,
            "deleting": 0,
            "recreating": 0,
            "refreshing": 0,
            "restarting": 0,
            "abandoning": 0,
            "verifying": 0,
            "resuming": 0,
            "starting": 0,
            "stopping": 0,
            "suspending": 0,
        }
        rendered["status"] = {
            "isStable": not unstable,
            "versionTarget": {"isReached": not unstable},
        }
        if resource.get("_hold"):  # FakeCompute.hold_rollout
            rendered["status"].update(copy.deepcopy(resource["_hold"]))
        if self.api.faults.launch_error:  # Faults.fail_group_launches: never gets there
            rendered["status"].update(isStable=False, versionTarget={"isReached": False})
            rendered["currentActions"]["creating"] = rendered["targetSize"]
        if resource.get("_autoscaler"):
            rendered["status"]["autoscaler"] = resource["_autoscaler"]
        if unstable:
            resource["_unstable_reads"] -= 1
        return rendered

    def resize_mig(self, call: Call) -> dict:
        path = self.api.item_path(call)
        self.store.get(path)
        size = int(call.query["size"])
        if size < 0:
            raise invalid("Invalid value for field 'size': must be >= 0")

        def apply() -> None:
            mig = self.store.find(path)
            if mig is not None:
                self.scale_mig(parse_path(path), mig, size)

        return self.api.operation(call, path, apply)

    def set_mig_template(self, call: Call) -> dict:
        template = call.body.get("instanceTemplate")
        # No rollout: setInstanceTemplate only affects instances created from now on.
        return self.api.set_fields(
            call,
            {
                "instanceTemplate": template,
                "versions": [{"name": "0", "instanceTemplate": template}],
                "_skip_rollout": True,
            },
        )

    def list_mig_errors(self, call: Call) -> dict:
        """instanceGroupManagers.listErrors: the instance actions that failed, newest last."""
        mig = self.store.get(self.api.item_path(call))
        error = self.api.faults.launch_error
        if not error:
            return {}
        where = parse_path(self.api.item_path(call))
        zone = where.zone or f"{where.region}-a"
        base = mig.get("baseInstanceName", where.name)
        instance = link(f"projects/{where.project}/zones/{zone}/instances/{base}-x")
        return {
            "items": [
                {
                    "error": dict(error),
                    "instanceActionDetails": {
                        "action": "CREATING",
                        "instance": instance,
                        "version": {"instanceTemplate": mig.get("instanceTemplate", "")},
                    },
                    "timestamp": now_rfc3339(),
                }
            ]
        }

    def list_managed_instances(self, call: Call) -> dict:
        path = self.api.item_path(call)
        mig = self.store.get(path)
        items = []
        for instance_path in mig["_instances"]:
            instance = self.store.get(instance_path)
            template = next(
                (
                    i["value"]
                    for i in instance["metadata"].get("items", [])
                    if i["key"] == "instance-template"
                ),
                None,
            )
            items.append(
                {
                    "instance": instance["selfLink"],
                    "id": instance["id"],
                    "instanceStatus": instance["status"],
                    "currentAction": "NONE",
                    "version": {"instanceTemplate": template},
                }
            )
        page, token = self.api._page(call, items)
        answer: dict[str, Any] = {"managedInstances": page} if page else {}
        if token:
            answer["nextPageToken"] = token
        return answer

    # -- autoscalers ---------------------------------------------------------------------

    def check_autoscaler(self, call: Call, where: ResourcePath, body: dict) -> None:
        target = self.require(body, "target")
        target_where = parse_path(to_path(target, where.project) or "")
        if target_where.collection != "instanceGroupManagers" or target_where.scope != where.scope:
            raise invalid(
                f"Invalid value for field 'resource.target': '{target}'. The target "
                "must be a managed instance group in the autoscaler's zone or region."
            )
        policy = self.require(body, "autoscalingPolicy")
        maximum = self.require(policy, "maxNumReplicas", "resource.autoscalingPolicy")
        minimum = policy.get("minNumReplicas", 1)
        if int(minimum) > int(maximum):
            raise invalid(
                "Invalid value for field 'resource.autoscalingPolicy.minNumReplicas': "
                f"{minimum}. Must be less than or equal to maxNumReplicas."
            )
        for key in ("cpuUtilization", "loadBalancingUtilization"):
            value = (policy.get(key) or {}).get("utilizationTarget")
            if value is not None and not 0 < float(value) <= 1:
                raise invalid(
                    f"Invalid value for field 'resource.autoscalingPolicy.{key}"
                    f".utilizationTarget': {value}. Must be in (0, 1]."
                )
        for path, other in self.store.resources.items():
            if (
                parse_path(path).collection == "autoscalers"
                and other.get("target") == target
                and other["name"] != body.get("name")
            ):
                raise invalid(
                    f"The managed instance group '{target}' already has an "
                    f"autoscaler '{other['name']}'."
                )

    def prepare_autoscaler(self, call: Call, where: ResourcePath, body: dict) -> None:
        body["status"] = "ACTIVE"
        body["autoscalingPolicy"].setdefault("minNumReplicas", 1)
        body["autoscalingPolicy"].setdefault("mode", "ON")
        body["autoscalingPolicy"].setdefault("coolDownPeriodSec", 60)

    def autoscaler_applied(self, where: ResourcePath, resource: dict) -> None:
        mig_path = to_path(resource["target"], "") or ""
        mig = self.store.find(mig_path)
        if mig is None:
            return
        mig["_autoscaler"] = resource["selfLink"]
        policy = resource["autoscalingPolicy"]
        size = len(mig["_instances"])
        clamped = max(int(policy["minNumReplicas"]), min(int(policy["maxNumReplicas"]), size))
        if clamped != size:
            self.scale_mig(parse_path(mig_path), mig, clamped)

    def autoscaler_changed(self, where: ResourcePath, before: dict, after: dict) -> None:
        self.autoscaler_applied(where, after)

    def autoscaler_deleting(self, where: ResourcePath, resource: dict) -> None:
        mig = self.store.find(to_path(resource["target"], "") or "")
        if mig is not None:
            mig.pop("_autoscaler", None)

    # -- unmanaged instance groups -------------------------------------------------------

    def prepare_group(self, call: Call, where: ResourcePath, body: dict) -> None:
        body.setdefault("namedPorts", [])
        body["_members"] = []
        self.fingerprint(body)

    def group_blockers(self, where: ResourcePath, resource: dict) -> list[str]:
        if resource.get("_manager"):
            return [resource["_manager"]]
        return []

    def _members(self, group: dict) -> list[str]:
        """Self links of the group's instances, managed or not."""
        if group.get("_manager"):
            mig = self.store.find(group["_manager"]) or {"_instances": []}
            return [link(path) for path in mig["_instances"]]
        return list(group.get("_members", []))

    def render_group(self, where: ResourcePath, resource: dict) -> dict:
        rendered = self.store.render(resource)
        rendered["size"] = len(self._members(resource))
        return rendered

    def _group_for_membership(self, call: Call) -> tuple[str, dict, list[str]]:
        path = self.api.item_path(call)
        group = self.store.get(path)
        if group.get("_manager"):
            raise invalid("Instances of a managed instance group are managed by its manager.")
        refs = [item.get("instance", "") for item in call.body.get("instances", [])]
        paths = []
        for ref in refs:
            instance_path = to_path(ref, call.project)
            if instance_path is None:
                raise invalid(
                    f"Invalid value for field 'instances': '{ref}'. The URL is malformed."
                )
            paths.append(instance_path)
        return path, group, paths

    def add_instances(self, call: Call) -> dict:
        path, group, paths = self._group_for_membership(call)
        zone = parse_path(path).zone
        for instance_path in paths:
            instance = self.store.get(instance_path)
            if parse_path(instance_path).zone != zone:
                raise invalid(f"Instance '{instance_path}' is not in zone '{zone}'.")
            if link(instance_path) in group["_members"]:
                raise ApiError(
                    400,
                    "memberAlreadyExists",
                    f"Resource '{instance_path}' is already a member of '{path}'",
                )
            network = instance["networkInterfaces"][0]["network"]
            if group.get("network") and group["network"] != network:
                raise invalid(f"Instance '{instance_path}' is not in the network of the group.")

        def apply() -> None:
            current = self.store.find(path)
            if current is None:
                return
            for instance_path in paths:
                instance = self.store.find(instance_path)
                if instance is not None and link(instance_path) not in current["_members"]:
                    current["_members"].append(link(instance_path))
                    current.setdefault("network", instance["networkInterfaces"][0]["network"])

        return self.api.operation(call, path, apply)

    def remove_instances(self, call: Call) -> dict:
        path, group, paths = self._group_for_membership(call)
        for instance_path in paths:
            if link(instance_path) not in group["_members"]:
                raise ApiError(
                    400, "memberNotFound", f"Resource '{instance_path}' is not a member of '{path}'"
                )

        def apply() -> None:
            current = self.store.find(path)
            for instance_path in paths:
                if current is not None and link(instance_path) in current["_members"]:
                    current["_members"].remove(link(instance_path))

        return self.api.operation(call, path, apply)

    def list_group_instances(self, call: Call) -> dict:
        path = self.api.item_path(call)
        group = self.store.get(path)
        items = []
        for member in self._members(group):
            instance = self.store.find(to_path(member, "") or "")
            if instance is not None:
                items.append(
                    {
                        "instance": member,
                        "status": instance["status"],
                        "namedPorts": group.get("namedPorts", []),
                    }
                )
        return self.api.list_answer(call, "compute#instanceGroupsListInstances", path, items)

    def set_named_ports(self, call: Call) -> dict:
        path = self.api.item_path(call)
        group = self.store.get(path)
        self.api._check_fingerprint(group, call.body, "fingerprint")
        ports = call.body.get("namedPorts", [])

        def apply() -> None:
            current = self.store.find(path)
            if current is None:
                return
            current["namedPorts"] = copy.deepcopy(ports)
            self.fingerprint(current)
            manager = self.store.find(current.get("_manager") or "")
            if manager is not None:
                manager["namedPorts"] = copy.deepcopy(ports)

        return self.api.operation(call, path, apply)

    # -- load balancing ------------------------------------------------------------------

    def check_health_check(self, call: Call, where: ResourcePath, body: dict) -> None:
        kind = self.require(body, "type")
        detail_key = {
            "HTTP": "httpHealthCheck",
            "HTTPS": "httpsHealthCheck",
            "HTTP2": "http2HealthCheck",
            "TCP": "tcpHealthCheck",
            "SSL": "sslHealthCheck",
            "GRPC": "grpcHealthCheck",
        }.get(kind)
        detail = body.get(detail_key or "") if detail_key else None
        if detail is None:
            raise invalid(
                f"Invalid value for field 'resource.{detail_key}': ''. "
                f"A {kind} health check needs {detail_key}."
            )
        if detail.get("portSpecification") == "USE_SERVING_PORT" and detail.get("port"):
            raise invalid(
                "Invalid value for field 'resource.port': port must not be set "
                "with portSpecification USE_SERVING_PORT."
            )
        if int(body.get("timeoutSec", 5)) > int(body.get("checkIntervalSec", 5)):
            raise invalid(
                "Invalid value for field 'resource.timeoutSec': must be less than "
                "or equal to checkIntervalSec."
            )

    def prepare_health_check(self, call: Call, where: ResourcePath, body: dict) -> None:
        for key, default in (
            ("checkIntervalSec", 5),
            ("timeoutSec", 5),
            ("healthyThreshold", 2),
            ("unhealthyThreshold", 2),
        ):
            body.setdefault(key, default)

    def check_neg(self, call: Call, where: ResourcePath, body: dict) -> None:
        if body.get("networkEndpointType") != "SERVERLESS":
            return
        service = (body.get("cloudRun") or {}).get("service")
        if not service:
            raise required("resource.cloudRun.service")
        known = self.api.cloud_run_services
        region = where.scope.removeprefix("regions/")
        if known is not None and (call.project, region, service) not in known():
            raise invalid(
                f"Invalid value for field 'resource.cloudRun.service': '{service}'. "
                f"Cloud Run service '{service}' does not exist in region '{region}'."
            )

    def _serverless(self, group: str) -> bool:
        neg = self.store.find(to_path(group, "") or "")
        return bool(neg) and neg.get("networkEndpointType") == "SERVERLESS"

    def check_backend_service(self, call: Call, where: ResourcePath, body: dict) -> None:
        groups = []
        for index, backend in enumerate(body.get("backends", [])):
            group = self.require(backend, "group", f"resource.backends[{index}]")
            collection = parse_path(to_path(group, "") or "").collection
            if collection not in ("instanceGroups", "networkEndpointGroups"):
                raise invalid(
                    f"Invalid value for field 'resource.backends[{index}].group': "
                    f"'{group}'. Must be an instance group or a network endpoint group."
                )
            if (
                collection == "networkEndpointGroups"
                and self.store.find(to_path(group, "") or "") is None
            ):
                raise not_found(to_path(group, "") or group)
            if self._serverless(group) and body.get("healthChecks"):
                raise invalid(
                    "Invalid value for field 'resource.healthChecks': "
                    f"'{body['healthChecks'][0]}'. A backend service cannot have a "
                    "healthcheck with Serverless network endpoint group backends."
                )
            if group in groups:
                raise invalid(f"Duplicate backend group '{group}'.")
            groups.append(group)
            if backend.get("balancingMode") == "RATE" and not (
                backend.get("maxRate") or backend.get("maxRatePerInstance")
            ):
                raise invalid(
                    f"Invalid value for field 'resource.backends[{index}]': "
                    "balancing mode RATE needs maxRate or maxRatePerInstance."
                )
        instance_groups = [g for g in groups if not self._serverless(g)]
        if instance_groups and not body.get("healthChecks"):
            raise invalid(
                "Invalid value for field 'resource.healthChecks': ''. Backend Service "
                "based on Instance Groups must have a health check."
            )

    def prepare_backend_service(self, call: Call, where: ResourcePath, body: dict) -> None:
        body.setdefault("protocol", "HTTP")
        body.setdefault("portName", "http")
        body.setdefault("loadBalancingScheme", "EXTERNAL")
        body.setdefault("timeoutSec", 30)
        body.setdefault("connectionDraining", {"drainingTimeoutSec": 300})
        for backend in body.get("backends", []):
            if not self._serverless(backend["group"]):  # serverless NEGs take no mode
                backend.setdefault("balancingMode", "UTILIZATION")
            backend.setdefault("capacityScaler", 1.0)
        self.fingerprint(body)

    def get_health(self, call: Call) -> dict:
        path = self.api.item_path(call)
        service = self.store.get(path)
        group_ref = call.body.get("group", "")
        group_path = to_path(group_ref, call.project) or ""
        if link(group_path) not in [b.get("group") for b in service.get("backends", [])]:
            raise invalid(f"Could not find group '{group_ref}' in backend service '{path}'.")
        group = self.store.get(group_path)
        port = next(
            (
                p["port"]
                for p in group.get("namedPorts", [])
                if p["name"] == service.get("portName")
            ),
            None,
        )
        statuses = []
        for member in self._members(group):
            instance = self.store.find(to_path(member, "") or "")
            if instance is None:
                continue
            default = "HEALTHY" if instance["status"] == "RUNNING" else "UNHEALTHY"
            status = {
                "instance": member,
                "ipAddress": instance["networkInterfaces"][0]["networkIP"],
                "healthState": self.api.health.get(instance["name"], default),
            }
            if port is not None:
                status["port"] = port
            statuses.append(status)
        answer: dict[str, Any] = {"kind": "compute#backendServiceGroupHealth"}
        if statuses:
            answer["healthStatus"] = statuses
        return answer

    def check_url_map(self, call: Call, where: ResourcePath, body: dict) -> None:
        defaults = [
            k for k in ("defaultService", "defaultUrlRedirect", "defaultRouteAction") if body.get(k)
        ]
        if len(defaults) != 1:
            raise invalid(
                "Invalid value for field 'resource': exactly one of defaultService, "
                "defaultUrlRedirect or defaultRouteAction must be set."
            )
        service = body.get("defaultService")
        if service and parse_path(to_path(service, "") or "").collection not in (
            "backendServices",
            "backendBuckets",
        ):
            raise invalid(f"Invalid value for field 'resource.defaultService': '{service}'.")

    def check_certificate(self, call: Call, where: ResourcePath, body: dict) -> None:
        kind = body.get("type") or ("MANAGED" if body.get("managed") else "SELF_MANAGED")
        if kind == "MANAGED":
            domains = (body.get("managed") or {}).get("domains") or []
            if not domains:
                raise required("resource.managed.domains")
            return
        certificate = body.get("certificate") or (body.get("selfManaged") or {}).get("certificate")
        key = body.get("privateKey") or (body.get("selfManaged") or {}).get("privateKey")
        if not certificate:
            raise required("resource.certificate")
        if not key and "_privateKey" not in body:
            raise required("resource.privateKey")
        try:
            parsed = x509.load_pem_x509_certificate(certificate.encode())
        except ValueError:
            raise invalid("The SSL certificate could not be parsed.") from None
        if key:
            try:
                private = serialization.load_pem_private_key(key.encode(), password=None)
            except (ValueError, TypeError):
                raise invalid("The SSL key could not be parsed.") from None
            if private.public_key().public_numbers() != parsed.public_key().public_numbers():
                raise invalid("The SSL key does not match the certificate.")

    def prepare_certificate(self, call: Call, where: ResourcePath, body: dict) -> None:
        if body.get("type") == "MANAGED" or body.get("managed"):
            body["type"] = "MANAGED"
            domains = body["managed"]["domains"]
            body["managed"]["status"] = "PROVISIONING"
            body["managed"]["domainStatus"] = {domain: "PROVISIONING" for domain in domains}
            body["subjectAlternativeNames"] = list(domains)
            return
        body["type"] = "SELF_MANAGED"
        if body.get("selfManaged"):
            body.setdefault("certificate", body["selfManaged"].get("certificate"))
            body.setdefault("privateKey", body["selfManaged"].get("privateKey"))
            body.pop("selfManaged")
        body["_privateKey"] = body.pop("privateKey")  # write-only, as in the real API
        parsed = x509.load_pem_x509_certificate(body["certificate"].encode())
        body["expireTime"] = parsed.not_valid_after_utc.isoformat()
        try:
            names = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            body["subjectAlternativeNames"] = names.value.get_values_for_type(x509.DNSName)
        except x509.ExtensionNotFound:
            body["subjectAlternativeNames"] = []

    def check_https_proxy(self, call: Call, where: ResourcePath, body: dict) -> None:
        self.require(body, "urlMap")
        certificates = body.get("sslCertificates") or []
        if not certificates and not body.get("certificateMap"):
            raise required("resource.sslCertificates")
        if len(certificates) > 15:
            raise invalid("At most 15 SSL certificates per target HTTPS proxy.")

    def check_http_proxy(self, call: Call, where: ResourcePath, body: dict) -> None:
        self.require(body, "urlMap")

    def check_forwarding_rule(self, call: Call, where: ResourcePath, body: dict) -> None:
        target = self.require(body, "target")
        if not parse_path(to_path(target, "") or "").collection.startswith("target"):
            raise invalid(f"Invalid value for field 'resource.target': '{target}'.")
        ports = body.get("portRange")
        if ports is not None and not re.fullmatch(r"\d+(-\d+)?", str(ports)):
            raise invalid(f"Invalid value for field 'resource.portRange': '{ports}'.")
        address = body.get("IPAddress")
        if address and re.fullmatch(r"[\d.]+", address):
            reserved = [
                r
                for p, r in self.store.resources.items()
                if parse_path(p).collection == "addresses" and r.get("address") == address
            ]
            if not reserved:
                raise invalid(
                    f"Invalid value for field 'resource.IPAddress': '{address}'. "
                    "The address is not reserved in this project."
                )

    def prepare_forwarding_rule(self, call: Call, where: ResourcePath, body: dict) -> None:
        address = body.get("IPAddress")
        if address and not re.fullmatch(r"[\d.]+", address):
            body["IPAddress"] = self.store.get(to_path(address, "") or "")["address"]
        elif not address:
            body["IPAddress"] = self.store.new_public_ip()
        ports = str(body.get("portRange", "80"))
        body["portRange"] = ports if "-" in ports else f"{ports}-{ports}"
        body.setdefault("IPProtocol", "TCP")
        body.setdefault("loadBalancingScheme", "EXTERNAL")
        body.setdefault("networkTier", "PREMIUM")
        body.setdefault("labels", {})
        self.fingerprint(body, "fingerprint", "labelFingerprint")

    def prepare_address(self, call: Call, where: ResourcePath, body: dict) -> None:
        body.setdefault("address", self.store.new_public_ip())
        body.setdefault("addressType", "EXTERNAL")
        body.setdefault("ipVersion", "IPV4")
        body.setdefault("networkTier", "PREMIUM")
        body.setdefault("labels", {})
        self.fingerprint(body, "labelFingerprint")

    def render_address(self, where: ResourcePath, resource: dict) -> dict:
        rendered = self.store.render(resource)
        users = self.store.users_of(where.path)
        rendered["status"] = "IN_USE" if users else "RESERVED"
        if users:
            rendered["users"] = [link(user) for user in users]
        return rendered
