#!/usr/bin/env python3
"""A stand-in for a model replica, so the nginx_proxy scenario needs no Docker.

Serves the model image's HTTP contract (GET /healthz, GET /readyz,
POST /predict) on ADDRESS:PORT (its one argument) and says which replica answered
(X-Upstream header). The tests steer it through /etc/fake-model/<port>.mode:
"ok" (default), "fail" (503 to everything), "unready" (/readyz 503).
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ADDRESS, _, PORT_TEXT = sys.argv[1].rpartition(":")
PORT = int(PORT_TEXT)
MODE_FILE = Path(f"/etc/fake-model/{PORT}.mode")


def mode() -> str:
    try:
        return MODE_FILE.read_text().strip() or "ok"
    except FileNotFoundError:
        return "ok"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status: int, document: dict) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Upstream", str(PORT))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        current = mode()
        if current == "fail" or (current == "unready" and self.path == "/readyz"):
            self.answer(503, {"status": current, "upstream": PORT})
        else:
            self.answer(200, {"status": "ready", "upstream": PORT, "path": self.path})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        if mode() == "fail":
            self.answer(503, {"error": "failing on purpose", "upstream": PORT})
            return
        instances = request.get("instances", [])
        self.answer(
            200, {"predictions": [0] * len(instances), "model_version": "fake", "upstream": PORT}
        )

    def log_message(self, *args) -> None:
        pass


ThreadingHTTPServer((ADDRESS, PORT), Handler).serve_forever()
