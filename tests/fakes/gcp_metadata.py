"""A metadata-server stand-in for GCP: the part of Compute Engine's metadata server that
hands an instance its service account's access token (and its email).

    metadata = GcpMetadata(email, token=fake.identity.issue_token(email))
    metadata.start()   # the fetcher's source: "metadata_url": f"http://127.0.0.1:{port}"
    ...
    metadata.served    # the paths answered, to show the token came from here

It refuses a request without the header Metadata-Flavor: Google, as the real one does.
"""

import json

from tests.fakes.metadata_server import MetadataHandler, MetadataServer

ACCOUNT_PATH = "/computeMetadata/v1/instance/service-accounts/default/"


class GcpMetadata(MetadataServer):
    def __init__(self, email: str, token: str) -> None:
        self.email = email
        self.token = token
        self.served: list[str] = []

    def handler(self) -> type[MetadataHandler]:
        metadata = self

        class Handler(MetadataHandler):
            answer_headers = (("Metadata-Flavor", "Google"),)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if self.headers.get("Metadata-Flavor") != "Google":
                    self.reply(403, "Missing Metadata-Flavor:Google header.", "application/text")
                elif path == ACCOUNT_PATH + "token":
                    metadata.served.append(path)
                    answer = {
                        "access_token": metadata.token,
                        "expires_in": 3599,
                        "token_type": "Bearer",
                    }
                    self.reply(200, json.dumps(answer), "application/json")
                elif path == ACCOUNT_PATH + "email":
                    metadata.served.append(path)
                    self.reply(200, metadata.email, "application/text")
                else:
                    self.reply(404, "", "application/text")

        return Handler
