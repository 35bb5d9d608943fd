"""A metadata-server stand-in for GCP: the part of Compute Engine's metadata server that
hands an instance its service account's access token (and its email).

    metadata = GcpMetadata(email, token=fake.identity.issue_token(email))
    metadata.start()   # the fetcher's source: "metadata_url": f"http://127.0.0.1:{port}"
    ...
    metadata.served    # the paths answered, to show the token came from here

It refuses a request without the header Metadata-Flavor: Google, as the real one does.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACCOUNT_PATH = "/computeMetadata/v1/instance/service-accounts/default/"


class GcpMetadata:
    def __init__(self, email: str, token: str) -> None:
        self.email = email
        self.token = token
        self.served: list[str] = []
        self.server: ThreadingHTTPServer | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve in a thread; the port it listens on."""
        metadata = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def reply(self, status: int, body: str, kind: str = "application/text") -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Metadata-Flavor", "Google")
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if self.headers.get("Metadata-Flavor") != "Google":
                    self.reply(403, "Missing Metadata-Flavor:Google header.")
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
                    self.reply(200, metadata.email)
                else:
                    self.reply(404, "")

        self.server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.server.server_address[1]

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
