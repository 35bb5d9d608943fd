#!/usr/bin/env python3
"""A stand-in for a model host behind the load balancer, so this scenario needs no Docker.

Serves HTTPS on 127.0.0.1:PORT (its one argument) with the certificate in /etc/fake-backend,
like a model host's Nginx: GET /healthz, POST /predict, anything else 200. Every answer says
which backend answered (X-Upstream) and echoes the forwarding headers. Requests other than
health checks are appended to /var/log/fake-backend/PORT.log, so a test can tell whether a
backend got any. The tests steer it through /etc/fake-backend/PORT.mode: "ok" (default),
"unhealthy" (/healthz 503), "fail-post" (POST 503, health checks pass).
"""

import json
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PORT = int(sys.argv[1])
STATE = Path("/etc/fake-backend")
MODE_FILE = STATE / f"{PORT}.mode"
LOG_FILE = Path(f"/var/log/fake-backend/{PORT}.log")


def mode() -> str:
    try:
        return MODE_FILE.read_text().strip() or "ok"
    except FileNotFoundError:
        return "ok"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status: int, document: dict) -> None:
        if self.path != "/healthz":
            with LOG_FILE.open("a") as log:
                log.write(f"{time.time():.3f} {self.command} {self.path} {status}\n")
        document.update(
            upstream=PORT,
            forwarded_for=self.headers.get("X-Forwarded-For", ""),
            forwarded_proto=self.headers.get("X-Forwarded-Proto", ""),
        )
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Upstream", str(PORT))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/healthz" and mode() == "unhealthy":
            self.answer(503, {"status": "unhealthy"})
        else:
            self.answer(200, {"status": "ok", "path": self.path})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        if mode() == "fail-post":
            self.answer(503, {"error": "failing on purpose"})
            return
        self.answer(200, {"predictions": [0] * len(request.get("instances", []))})

    def log_message(self, *args) -> None:
        pass


LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(STATE / "tls.crt", STATE / "tls.key")
server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
