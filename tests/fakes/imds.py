"""Instance-metadata stand-ins. AWS (InstanceMetadata): the part of EC2's IMDSv2 that
hands an instance its profile's credentials (a session token first, then the role name
and its credentials).

    imds = InstanceMetadata(role="mlops-vm-t1-model", credentials={...})
    imds.start("0.0.0.0")   # the VM's fetcher is pointed at http://<address>:<port>
    ...
    imds.served  # the paths answered, to show the credentials came from here

It refuses a credentials request without the session token, as IMDSv2 does. Azure
(AzureInstanceMetadata): managed identities' tokens.
"""

import json
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.azure.rbac import token_for
from tests.fakes.metadata_server import MetadataHandler, MetadataServer

TOKEN_PATH = "/latest/api/token"
CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/"


class InstanceMetadata(MetadataServer):
    def __init__(self, role: str, credentials: dict[str, str]) -> None:
        self.role = role
        self.credentials = credentials
        self.token = "imds-session-token"
        self.served: list[str] = []

    def handler(self) -> type[MetadataHandler]:
        metadata = self

        class Handler(MetadataHandler):
            def do_PUT(self) -> None:
                if self.path == TOKEN_PATH and self.headers.get(
                    "X-aws-ec2-metadata-token-ttl-seconds"
                ):
                    metadata.served.append(self.path)
                    self.reply(200, metadata.token)
                else:
                    self.reply(400, "")

            def do_GET(self) -> None:
                if self.headers.get("X-aws-ec2-metadata-token") != metadata.token:
                    self.reply(401, "")
                elif self.path == CREDENTIALS_PATH:
                    metadata.served.append(self.path)
                    self.reply(200, metadata.role)
                elif self.path == CREDENTIALS_PATH + metadata.role:
                    metadata.served.append(self.path)
                    self.reply(200, json.dumps({"Code": "Success", **metadata.credentials}))
                else:
                    self.reply(404, "")

        return Handler


AZURE_TOKEN_PATH = "/metadata/identity/oauth2/token"


class AzureInstanceMetadata(MetadataServer):
    """Azure's instance metadata service, the part that hands a VM its managed identities'
    tokens: GET /metadata/identity/oauth2/token?api-version=...&resource=...&client_id=...
    with the header Metadata: true (400 without it, as IMDS refuses a proxied request).
    IDENTITIES() gives clientId -> principalId of the identities the VM holds (asked per
    request: the scale set's identity may be made after this starts); a client_id that is
    none of them is 400 identity_not_found. The token is the fake ARM's for that principal
    (tests.fakes.azure.rbac.token_for), so the data planes apply its role assignments.

        imds = AzureInstanceMetadata(arm.identity_principals)
        port = imds.start()
    """

    def __init__(self, identities: Callable[[], dict[str, str]]) -> None:
        self.identities = identities
        self.served: list[tuple[str, str]] = []  # (client_id, resource) of each token

    def handler(self) -> type[MetadataHandler]:
        metadata = self

        class Handler(MetadataHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = dict(parse_qsl(url.query))
                if url.path != AZURE_TOKEN_PATH:
                    self.reply(404, {"error": "not_found"})
                elif self.headers.get("Metadata") != "true":
                    self.reply(400, {"error": "invalid_request", "error_description": "Metadata"})
                elif not query.get("api-version") or not query.get("resource"):
                    self.reply(400, {"error": "invalid_request"})
                else:
                    principals = metadata.identities()
                    client_id = query.get("client_id", "")
                    if client_id not in principals:
                        self.reply(
                            400,
                            {"error": "invalid_request", "error_description": "Identity not found"},
                        )
                        return
                    metadata.served.append((client_id, query["resource"]))
                    self.reply(
                        200,
                        {
                            "access_token": token_for(principals[client_id], query["resource"]),
                            "client_id": client_id,
                            "expires_in": "86399",
                            "resource": query["resource"],
                            "token_type": "Bearer",
                        },
                    )

        return Handler
