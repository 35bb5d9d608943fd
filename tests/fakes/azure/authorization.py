"""Managed identities and Azure RBAC in the fake ARM, held to their REST contracts.

- Microsoft.ManagedIdentity/userAssignedIdentities: a synchronous PUT (201, then 200) that
  shows properties.principalId, clientId and tenantId, kept across updates.
- Microsoft.Authorization/roleAssignments, an extension resource at any scope:
  PUT {scope}/providers/Microsoft.Authorization/roleAssignments/{guid} answers 201 with the
  assignment; the name must be a GUID (InvalidRoleAssignmentId), the role definition a known
  one (RoleDefinitionDoesNotExist), the principal an existing one (PrincipalNotFound), the
  scope an existing resource (InvalidScope / ResourceNotFound); the same role for the same
  principal on the same scope under another name is 409 RoleAssignmentExists, and changing
  an assignment is 400 RoleAssignmentUpdateNotPermitted. GET answers 404
  RoleAssignmentNotFound; DELETE answers 200 with the assignment, or 204. GET
  /subscriptions/S/providers/Microsoft.Authorization/roleAssignments?$filter=principalId eq
  '<id>' lists a principal's assignments in the subscription. Deleting an identity leaves
  its assignments behind, as Azure does.

RBAC as the data planes check it, and identities' tokens: rbac.py.
"""

from __future__ import annotations

import re
import uuid

from tests.fakes.azure import key_vault
from tests.fakes.azure.rbac import (
    ASSIGNMENT_TYPE,
    ASSIGNMENTS,
    ROLE_DEFINITION,
    ROLES,
    TENANT_ID,
    assignments,
)
from tests.fakes.azure.rules import ResourceType, require
from tests.fakes.azure.state import ArmError, ArmState, Json, key, now, parse_id

PRINCIPAL_FILTER = re.compile(r"principalId eq '([^']+)'", re.IGNORECASE)


class UserAssignedIdentities(ResourceType):
    namespace = "Microsoft.ManagedIdentity"
    collection = "userAssignedIdentities"
    long_running = False

    def prepare(self, state: ArmState, rid: str, body: Json, existing: Json | None) -> Json:
        kept = (existing or {}).get("properties") or {}
        body["properties"] = {
            "tenantId": TENANT_ID,
            "principalId": kept.get("principalId") or str(uuid.uuid4()),
            "clientId": kept.get("clientId") or str(uuid.uuid4()),
        }
        return body


def identity_principals(state: ArmState) -> dict[str, str]:
    """clientId -> principalId of every user-assigned identity."""
    return {
        i["properties"]["clientId"]: i["properties"]["principalId"]
        for i in state.of_type("Microsoft.ManagedIdentity/userAssignedIdentities")
    }


def scope_exists(state: ArmState, scope: str) -> bool:
    """A subscription, resource group, resource, or a child the fake keeps (a vault's
    secret, a storage account's container)."""
    parts = scope.strip("/").split("/")
    if len(parts) <= 4:
        return len(parts) == 2 or state.resource_group(parts[1], parts[3]) is not None
    path = parse_id(scope)
    if path is None:
        return False
    top = state.get(path.top_id)
    if top is None:
        return False
    children = [(kind.lower(), name) for kind, name in path.pairs[1:]]
    if not children:
        return True
    if top["type"].lower() == "microsoft.keyvault/vaults" and children[0][0] == "secrets":
        vault = key_vault.vaults(state).get(top["name"].lower())
        return vault is not None and children[0][1].lower() in vault.secrets
    if top["type"].lower() == "microsoft.storage/storageaccounts":
        containers = state.private_of(top["id"]).get("containers", {})
        return children[:1] == [("blobservices", "default")] and (
            len(children) == 1 or children[1][1].lower() in containers
        )
    return False


class RoleAssignments:
    """Routes the role assignment requests (the path holds ASSIGNMENTS)."""

    def __init__(self, state: ArmState) -> None:
        self.state = state

    def handle(self, method: str, path: str, query: dict[str, str], body: Json) -> tuple:
        index = path.lower().rindex("/" + ASSIGNMENTS)
        scope, rest = path[:index], path[index + len(ASSIGNMENTS) + 1 :].strip("/")
        if not rest:
            require(method == "GET", "MethodNotAllowed", f"{method} on role assignments", 405)
            return 200, {"value": self.listed(scope, query)}, {}
        name = rest
        rid = f"{scope}/providers/{ASSIGNMENT_TYPE}/{name}"
        stored = assignments(self.state).get(key(rid))
        if method == "GET":
            if stored is None:
                raise ArmError(
                    404, "RoleAssignmentNotFound", f"The role assignment '{name}' is not found."
                )
            return 200, dict(stored), {}
        if method == "DELETE":
            if stored is None:
                return 204, None, {}
            del assignments(self.state)[key(rid)]
            return 200, stored, {}
        require(method == "PUT", "MethodNotAllowed", f"{method} on a role assignment", 405)
        return self.put(scope, name, rid, stored, body)

    def listed(self, scope: str, query: dict[str, str]) -> list[Json]:
        wanted = PRINCIPAL_FILTER.search(query.get("$filter", ""))
        found = []
        for assignment in assignments(self.state).values():
            props = assignment["properties"]
            if not key(props["scope"]).startswith(key(scope)):
                continue
            if wanted and props["principalId"] != wanted.group(1):
                continue
            found.append(dict(assignment))
        return found

    def put(self, scope: str, name: str, rid: str, stored: Json | None, body: Json) -> tuple:
        try:
            uuid.UUID(name)
        except ValueError:
            raise ArmError(
                400, "InvalidRoleAssignmentId", f"The role assignment ID '{name}' is not valid."
            ) from None
        props = body.get("properties") or {}
        definition = str(props.get("roleDefinitionId", ""))
        match = ROLE_DEFINITION.match(definition)
        require(
            match is not None and match["role"].lower() in ROLES,
            "RoleDefinitionDoesNotExist",
            f"The specified role definition with ID '{definition}' does not exist.",
        )
        principal = str(props.get("principalId", ""))
        require(
            principal in identity_principals(self.state).values(),
            "PrincipalNotFound",
            f"Principal {principal} does not exist in the directory {TENANT_ID}.",
        )
        require(
            scope_exists(self.state, scope),
            "InvalidScope" if parse_id(scope) is None else "ResourceNotFound",
            f"The scope '{scope}' is not valid or does not exist.",
            404 if parse_id(scope) else 400,
        )
        if stored is not None:
            same = all(
                stored["properties"][f] == props.get(f) for f in ("roleDefinitionId", "principalId")
            )
            require(
                same,
                "RoleAssignmentUpdateNotPermitted",
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            )
            return 201, dict(stored), {}
        for other in assignments(self.state).values():
            theirs = other["properties"]
            if (
                key(theirs["scope"]) == key(scope)
                and theirs["principalId"] == principal
                and theirs["roleDefinitionId"].lower() == definition.lower()
            ):
                raise ArmError(409, "RoleAssignmentExists", "The role assignment already exists.")
        assignment = {
            "id": rid,
            "name": name,
            "type": ASSIGNMENT_TYPE,
            "properties": {
                "roleDefinitionId": definition,
                "principalId": principal,
                "principalType": props.get("principalType", "ServicePrincipal"),
                "scope": scope,
                "createdOn": now(),
            },
        }
        assignments(self.state)[key(rid)] = assignment
        return 201, dict(assignment), {}
