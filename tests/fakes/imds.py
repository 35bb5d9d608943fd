"""An instance-metadata stand-in: the part of EC2's IMDSv2 that hands an instance its
profile's credentials (a session token first, then the role name and its credentials).

    imds = InstanceMetadata(role="mlops-vm-t1-model", credentials={...})
    imds.start("0.0.0.0")   # the VM's fetcher is pointed at http://<address>:<port>
    ...
    imds.served  # the paths answered, to show the credentials came from here

It refuses a credentials request without the session token, as IMDSv2 does.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN_PATH = "/latest/api/token"
CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/"


class InstanceMetadata:
    def __init__(self, role: str, credentials: dict[str, str]) -> None:
        self.role = role
        self.credentials = credentials
        self.token = "imds-session-token"
        self.served: list[str] = []
        self.server: ThreadingHTTPServer | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve in a thread; the port it listens on."""
        metadata = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def reply(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

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

        self.server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.server.server_address[1]

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
