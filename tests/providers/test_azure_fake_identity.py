"""The fake's identity parts over raw HTTP, held to Azure's contracts: managed identities,
role assignments (names, principals, scopes, duplicates), Blob storage's data plane (its
required headers, RBAC on an identity's token, inherited from a scope above), and the
instance metadata stand-in's token endpoint."""

from __future__ import annotations

import uuid

import pytest

from tests.fakes.azure import SUBSCRIPTION_ID, FakeArm
from tests.fakes.azure.rbac import BLOB_READER, token_for
from tests.fakes.imds import AzureInstanceMetadata
from tests.providers.test_azure_fake import call, error_code, plain_session

pytestmark = pytest.mark.usefixtures("plain_http", "fresh_hooks")

GROUP = "fake-identity"
PREFIX = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{GROUP}/providers"
IDENTITY = f"{PREFIX}/Microsoft.ManagedIdentity/userAssignedIdentities/boot"
ACCOUNT_NAME = f"fakeid{uuid.uuid4().hex[:8]}"
ACCOUNT = f"{PREFIX}/Microsoft.Storage/storageAccounts/{ACCOUNT_NAME}"
CONTAINER = f"{ACCOUNT}/blobServices/default/containers/boot"
ROLES = "/providers/Microsoft.Authorization/roleAssignments"
ROLE_API = "2022-04-01"


def role_definition(role: str) -> str:
    return (
        f"/subscriptions/{SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleDefinitions/{role}"
    )


@pytest.fixture(scope="module")
def setup(arm: FakeArm) -> dict:
    """An identity, a storage account with a container and one blob in it."""
    arm.create_resource_group(SUBSCRIPTION_ID, GROUP, "westeurope")
    identity = call(arm, "PUT", IDENTITY, {"location": "westeurope"}, api_version="2023-01-31")
    assert identity.status_code == 201
    body = {"location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}
    call(arm, "PUT", ACCOUNT, body, api_version="2023-05-01").raise_for_status()
    created = call(arm, "PUT", CONTAINER, {"properties": {}}, api_version="2023-05-01")
    assert created.status_code == 201
    put = blob(arm, "PUT", data=b"payload", headers={"x-ms-blob-type": "BlockBlob"})
    assert put.status_code == 201
    return identity.json()["properties"]


def blob(arm: FakeArm, method: str, *, token: str = "fake-token", data=None, headers=None):
    sent = {"Authorization": f"Bearer {token}", "x-ms-version": "2021-08-06", **(headers or {})}
    url = f"{arm.url}/blob/{ACCOUNT_NAME}/boot/boot/a.xz"
    return plain_session().request(method, url, data=data, headers=sent)


def assign(arm: FakeArm, scope: str, principal: str, role: str = BLOB_READER, name=None):
    body = {
        "properties": {
            "roleDefinitionId": role_definition(role),
            "principalId": principal,
            "principalType": "ServicePrincipal",
        }
    }
    path = f"{scope}{ROLES}/{name or uuid.uuid4()}"
    return call(arm, "PUT", path, body, api_version=ROLE_API)


def test_an_identity_shows_its_principal_and_client_ids_and_keeps_them(arm, setup):
    again = call(arm, "PUT", IDENTITY, {"location": "westeurope"}, api_version="2023-01-31")
    assert again.status_code == 200
    assert again.json()["properties"]["principalId"] == setup["principalId"]
    assert again.json()["properties"]["clientId"] == setup["clientId"]


def test_role_assignments_refuse_what_arm_refuses(arm, setup):
    principal = setup["principalId"]
    assert error_code(assign(arm, CONTAINER, principal, name="not-a-guid")) == (
        "InvalidRoleAssignmentId"
    )
    assert error_code(assign(arm, CONTAINER, str(uuid.uuid4()))) == "PrincipalNotFound"
    assert error_code(assign(arm, CONTAINER, principal, role=str(uuid.uuid4()))) == (
        "RoleDefinitionDoesNotExist"
    )
    missing = f"{ACCOUNT}/blobServices/default/containers/nothere"
    assert assign(arm, missing, principal).status_code == 404
    name = str(uuid.uuid4())
    assert assign(arm, CONTAINER, principal, name=name).status_code == 201
    assert assign(arm, CONTAINER, principal, name=name).status_code == 201  # the same again
    duplicate = assign(arm, CONTAINER, principal)
    assert (duplicate.status_code, error_code(duplicate)) == (409, "RoleAssignmentExists")
    listed = call(
        arm,
        "GET",
        f"/subscriptions/{SUBSCRIPTION_ID}{ROLES}?$filter=principalId eq '{principal}'",
        api_version=ROLE_API,
    ).json()["value"]
    assert [a["name"] for a in listed] == [name]
    path = f"{CONTAINER}{ROLES}/{name}"
    assert call(arm, "DELETE", path, api_version=ROLE_API).status_code == 200
    assert call(arm, "DELETE", path, api_version=ROLE_API).status_code == 204
    gone = call(arm, "GET", path, api_version=ROLE_API)
    assert error_code(gone) == "RoleAssignmentNotFound"


def test_blob_storage_wants_its_headers_and_applies_rbac_to_an_identity(arm, setup):
    plain = plain_session().get(
        f"{arm.url}/blob/{ACCOUNT_NAME}/boot/boot/a.xz", headers={"Authorization": "Bearer x"}
    )
    assert plain.headers["x-ms-error-code"] == "MissingRequiredHeader"
    identity = token_for(setup["principalId"], "https://storage.azure.com/")
    refused = blob(arm, "GET", token=identity)
    assert (refused.status_code, refused.headers["x-ms-error-code"]) == (
        403,
        "AuthorizationPermissionMismatch",
    )
    # Granted on the account: the container below it inherits the role.
    assert assign(arm, ACCOUNT, setup["principalId"]).status_code == 201
    assert blob(arm, "GET", token=identity).content == b"payload"
    assert blob(arm, "HEAD", token=identity).headers["Content-Length"] == str(len(b"payload"))
    written = blob(arm, "PUT", token=identity, data=b"x", headers={"x-ms-blob-type": "BlockBlob"})
    assert written.status_code == 403  # a reader may not write
    assert blob(arm, "GET").content == b"payload"
    missing = plain_session().head(
        f"{arm.url}/blob/{ACCOUNT_NAME}/boot/nothing",
        headers={"Authorization": "Bearer t", "x-ms-version": "2021-08-06"},
    )
    assert (missing.status_code, missing.content) == (404, b"")


def test_the_metadata_stand_in_wants_its_header_and_a_known_client_id(arm, setup):
    imds = AzureInstanceMetadata(arm.identity_principals)
    url = f"http://127.0.0.1:{imds.start()}/metadata/identity/oauth2/token"
    try:
        query = {
            "api-version": "2018-02-01",
            "resource": "https://vault.azure.net",
            "client_id": setup["clientId"],
        }
        assert plain_session().get(url, params=query).status_code == 400  # no Metadata: true
        answer = plain_session().get(url, params=query, headers={"Metadata": "true"})
        assert answer.json()["access_token"] == token_for(
            setup["principalId"], "https://vault.azure.net"
        )
        unknown = {**query, "client_id": str(uuid.uuid4())}
        assert (
            plain_session().get(url, params=unknown, headers={"Metadata": "true"}).status_code
            == 400
        )
    finally:
        imds.stop()
