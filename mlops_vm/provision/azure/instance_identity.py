"""The identity scale set instances boot with: a user-assigned managed identity per
environment, and role assignments of least privilege, each scoped to exactly one thing:

  Key Vault Secrets User     on each named secret (vaults/V/secrets/S, not the vault)
  Storage Blob Data Reader   on the payload container (not the account)
  AcrPull                    on the model's registry (an ACR in the subscription)

The instances ask the instance metadata service for tokens of this identity (its client
id is in their boot source) and exchange the ARM token for an ACR refresh token: no
password anywhere. A role assignment's name is a GUID derived from its scope, role and
identity, so a second run finds each one again. destroy removes them: deleting the identity
alone would leave them behind, assigned to nobody.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from mlops_vm.bootstrap.boot_source import BootPlan
from mlops_vm.plan import ChangeLog
from mlops_vm.provision.azure import generic
from mlops_vm.provision.azure.client import Arm, Json
from mlops_vm.provision.azure.errors import PROVIDER
from mlops_vm.provision.azure.names import has_tags, name_of, tags
from mlops_vm.provision.azure.network import Layout
from mlops_vm.provision.azure_refs import ACR_REGISTRY, KEY_VAULT_SECRET_URI
from mlops_vm.provision.errors import ErrorCode, ProvisionError

IDENTITY_API = "2023-01-31"
IDENTITY_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
ROLE_API = "2022-04-01"
ASSIGNMENTS = "/providers/Microsoft.Authorization/roleAssignments"
VAULT_TYPE = "Microsoft.KeyVault/vaults"
VAULT_API = "2023-07-01"
REGISTRY_TYPE = "Microsoft.ContainerRegistry/registries"
# Azure's built-in roles (the same ids in every tenant).
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"  # Key Vault Secrets User
BLOB_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"  # Storage Blob Data Reader
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"  # AcrPull
ROLE_NAMES = {
    SECRETS_USER: "Key Vault Secrets User",
    BLOB_READER: "Storage Blob Data Reader",
    ACR_PULL: "AcrPull",
}
PLANNED_PRINCIPAL = "<principal id>"  # a dry run's stand-in for an identity to create
# Names role assignments after what they grant to whom (any fixed namespace would do).
ASSIGNMENT_NAMESPACE = uuid.UUID("6f1d2c4e-8a0b-4f6e-9c1d-2b3a4c5d6e7f")


@dataclass(frozen=True)
class Grant:
    """One role on one scope (an ARM id)."""

    scope: str
    role: str  # a role definition's GUID

    def assignment_id(self, identity_id: str) -> str:
        name = uuid.uuid5(ASSIGNMENT_NAMESPACE, f"{self.scope.lower()}|{self.role}|{identity_id}")
        return f"{self.scope}{ASSIGNMENTS}/{name}"

    def __str__(self) -> str:
        role = ROLE_NAMES.get(self.role, self.role)
        return f"{role} on {self.scope.split('/providers/', 1)[-1]}"


def identity_id(layout: Layout) -> str:
    return layout.ids.of(IDENTITY_TYPE, f"{layout.names.prefix}-instances")


def refused(field: str, message: str, hint: str) -> ProvisionError:
    return ProvisionError(
        ErrorCode.INVALID_INPUT,
        f"{field}: {message}",
        hint=hint,
        provider=PROVIDER,
        operation="find what the scale set's identity may read",
    )


def secret_scope(arm: Arm, field: str, reference: str) -> str:
    """The ARM id of the secret REFERENCE names (its vault found in the subscription)."""
    match = KEY_VAULT_SECRET_URI.match(reference)
    if match is None:
        raise refused(field, f"{reference!r} is not a Key Vault secret identifier", "see validate")
    vault = generic.find_by_name(arm, "Key Vault", VAULT_TYPE, match["vault"])
    if vault is None:
        raise refused(
            field,
            f"Key Vault {match['vault']} is not in subscription {arm.subscription_id}",
            "the scale set's identity is given read access to the secret itself: keep the "
            "vault in the environment's subscription",
        )
    shown = generic.get(arm, "Key Vault", vault["id"], VAULT_API) or {}
    if not (shown.get("properties") or {}).get("enableRbacAuthorization"):
        # Access policies ignore role assignments: the identity could read nothing.
        raise refused(
            field,
            f"Key Vault {match['vault']} uses access policies, not Azure RBAC",
            "switch the vault to the Azure RBAC permission model (az keyvault update "
            "--enable-rbac-authorization true) so that its secrets can be granted one by one",
        )
    return f"{vault['id']}/secrets/{match['name']}"


def registry_scope(arm: Arm, host: str) -> str:
    match = ACR_REGISTRY.match(host)
    assert match is not None
    registry = generic.find_by_name(arm, "container registry", REGISTRY_TYPE, match["name"])
    if registry is None:
        raise refused(
            "model.image",
            f"container registry {match['name']} is not in subscription {arm.subscription_id}",
            "the instances pull with AcrPull on the registry: keep it in this subscription",
        )
    return registry["id"]


def grants(arm: Arm, plan: BootPlan, container_id: str | None) -> list[Grant]:
    """What the identity may do: read each named secret, the payload container, pull."""
    found = [
        Grant(secret_scope(arm, f"fleet.secrets.{field}", reference), SECRETS_USER)
        for field, reference in sorted(plan.fields.items())
    ]
    if container_id:
        found.append(Grant(container_id, BLOB_READER))
    if plan.registry_host and ACR_REGISTRY.match(plan.registry_host):
        found.append(Grant(registry_scope(arm, plan.registry_host), ACR_PULL))
    return sorted(set(found), key=lambda grant: (grant.role, grant.scope.lower()))


def ensure_identity(arm: Arm, layout: Layout, log: ChangeLog) -> Json:
    """The identity as ARM shows it (a stand-in with planned ids in a dry run)."""
    rid = identity_id(layout)
    found = generic.get(arm, "managed identity", rid, IDENTITY_API)
    if found is not None:
        return found
    body = {"location": layout.location, "tags": tags(layout.env, layout.role)}
    return log.create(
        "managed_identity",
        name_of(rid),
        lambda: generic.put(arm, "managed identity", rid, IDENTITY_API, body),
        "the scale set's instances",
        planned={
            "id": rid,
            "properties": {"principalId": PLANNED_PRINCIPAL, "clientId": "<client id>"},
        },
    )


def ensure_grants(arm: Arm, identity: Json, wanted: list[Grant], log: ChangeLog) -> None:
    """Each role assignment of WANTED made when missing."""
    principal = identity["properties"]["principalId"]
    for grant in wanted:
        rid = grant.assignment_id(identity["id"])
        # An identity only planned has no assignments yet.
        planned = principal == PLANNED_PRINCIPAL
        if not planned and generic.get(arm, "role assignment", rid, ROLE_API) is not None:
            continue
        body = {
            "properties": {
                "roleDefinitionId": (
                    f"/subscriptions/{arm.subscription_id}/providers/Microsoft.Authorization"
                    f"/roleDefinitions/{grant.role}"
                ),
                "principalId": principal,
                # Named: a new identity's principal may not have reached every replica yet.
                "principalType": "ServicePrincipal",
            }
        }
        log.create(
            "role_assignment",
            str(grant),
            lambda rid=rid, body=body: generic.put(arm, "role assignment", rid, ROLE_API, body),
            f"for {name_of(identity['id'])}",
        )


def delete_role_assignments(arm: Arm, group: str, env: str, log: ChangeLog) -> None:
    """The role assignments (wherever they are) of ENV's identities in GROUP: before the
    identities go, which destroy's usual order deletes with the rest of the group."""
    found = arm.read_all(
        "list managed identities",
        arm.resources.resources.list_by_resource_group,
        group,
        filter=f"resourceType eq '{IDENTITY_TYPE}'",
    )
    for listed in found:
        if not has_tags(listed, env):
            continue
        identity = generic.get(arm, "managed identity", listed["id"], IDENTITY_API)
        if identity is None:
            continue
        principal = identity["properties"]["principalId"]
        assigned = generic.list_at(
            arm,
            "role assignments",
            ASSIGNMENTS,
            ROLE_API,
            f"principalId eq '{principal}'",
        )
        for assignment in assigned:
            props = assignment["properties"]
            grant = Grant(props["scope"], props["roleDefinitionId"].rsplit("/", 1)[-1])
            log.delete(
                "role_assignment",
                str(grant),
                lambda rid=assignment["id"]: generic.delete(arm, "role assignment", rid, ROLE_API),
                f"of {identity['name']}",
            )
