"""A stateful fake of the Compute Engine v1 REST API (there is no GCP emulator).

Requests are routed and validated against the compute v1 discovery document shipped inside
google-api-python-client; behaviour is generic over a table of resources keyed by path,
with per-kind hooks. See server.FakeCompute for the test-facing handle.
"""

from tests.fakes.gcp.server import FakeCompute

__all__ = ["FakeCompute"]
