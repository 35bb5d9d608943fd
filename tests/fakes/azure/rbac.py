"""Azure RBAC as the fake's data planes check it: role assignments (kept by
authorization.RoleAssignments) and the tokens of managed identities.

The operator's token ("fake-token") may do anything not denied. An identity's token
(token_for: what the instance metadata stand-in hands out) carries its principal, and a data
plane lets it do only what a role assignment on the resource, or a scope above, grants.
"""

from __future__ import annotations

import re

from tests.fakes.azure.state import ArmState, Json, key

TENANT_ID = "00000000-0000-0000-0000-00000000aaaa"
ASSIGNMENTS = "providers/microsoft.authorization/roleassignments"
ASSIGNMENT_TYPE = "Microsoft.Authorization/roleAssignments"
# Built-in roles the fake knows (their ids are the same in every tenant).
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
BLOB_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
BLOB_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
ROLES = {SECRETS_USER, BLOB_READER, BLOB_CONTRIBUTOR, ACR_PULL, READER, CONTRIBUTOR}
ROLE_DEFINITION = re.compile(
    r"^/subscriptions/[^/]+/providers/Microsoft\.Authorization/roleDefinitions/"
    r"(?P<role>[0-9a-f-]{36})$",
    re.IGNORECASE,
)
TOKEN_PREFIX = "mi."


def token_for(principal_id: str, resource: str) -> str:
    """An access token of an identity for RESOURCE (the audience)."""
    return f"{TOKEN_PREFIX}{principal_id}.{resource}"


def principal_of(headers: dict[str, str]) -> str | None:
    """The identity a request's bearer token is of; None for the operator's token."""
    token = headers.get("authorization", "")[len("bearer ") :]
    if not token.startswith(TOKEN_PREFIX):
        return None
    return token[len(TOKEN_PREFIX) :].split(".", 1)[0]


def assignments(state: ArmState) -> dict[str, Json]:
    return state.private_of("authorization").setdefault("assignments", {})


def has_role(state: ArmState, principal: str, resource_id: str, roles: set[str]) -> bool:
    """Whether PRINCIPAL holds one of ROLES on RESOURCE_ID or a scope above it."""
    target = key(resource_id)
    for assignment in assignments(state).values():
        props = assignment["properties"]
        scope = key(props["scope"])
        if props["principalId"] != principal or not (
            target == scope or target.startswith(scope + "/")
        ):
            continue
        match = ROLE_DEFINITION.match(props["roleDefinitionId"])
        if match and match["role"].lower() in roles:
            return True
    return False
