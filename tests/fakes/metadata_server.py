"""What the instance-metadata stand-ins (tests/fakes/imds.py, gcp_metadata.py) share: an
HTTP server in a thread on a port of its own, and a quiet handler that answers a status and
a body (text, or a dict as JSON) with the headers the real service adds."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class MetadataHandler(BaseHTTPRequestHandler):
    # Headers every answer carries (GCP's metadata server names itself in each).
    answer_headers: tuple[tuple[str, str], ...] = ()

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def reply(self, status: int, body: str | dict, kind: str | None = None) -> None:
        if isinstance(body, dict):
            body, kind = json.dumps(body), kind or "application/json"
        data = body.encode()
        self.send_response(status)
        for name, value in self.answer_headers:
            self.send_header(name, value)
        if kind:
            self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class MetadataServer:
    """A stand-in serves the handler class its handler() makes (bound to the stand-in)."""

    server: ThreadingHTTPServer | None = None

    def handler(self) -> type[MetadataHandler]:
        raise NotImplementedError

    def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve in a thread; the port it listens on."""
        self.server = ThreadingHTTPServer((host, port), self.handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.server.server_address[1]

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
