"""A stateful fake of Azure Resource Manager for provider tests (no Azure emulator exists).

    with FakeArm() as arm:
        settings = ProviderSettings(name="azure", region="westeurope", endpoint_url=arm.url,
                                    options={"subscription_id": SUBSCRIPTION_ID})
        provider = AzureProvider(settings, credential=StaticTokenCredential(),
                                 authentication_policy=FakeBearerPolicy())

The SDK's bearer-token policy refuses plain http, so tests pass FakeBearerPolicy instead and
a credential that is never asked for a token. Modules: state.py (resources, operations,
hooks), rules.py (per-type behaviour, shared look-ups), network.py and compute.py (the types),
server.py (the HTTP protocol and the FakeArm handle).

Simplified on purpose: a scale set instance takes the whole model (custom data included) when
it is upgraded, where Azure applies new custom data only to new or reimaged instances (which
a Rolling policy with maxSurge creates); the platform never rolls or scales on its own.
"""

from typing import Any

from azure.core.credentials import AccessToken
from azure.core.pipeline.policies import SansIOHTTPPolicy

from tests.fakes.azure.server import FakeArm

SUBSCRIPTION_ID = "00000000-0000-0000-0000-00000000f4ce"

__all__ = ["SUBSCRIPTION_ID", "FakeArm", "FakeBearerPolicy", "StaticTokenCredential"]


class StaticTokenCredential:
    """A TokenCredential for the fake: the SDK wants one even when a custom policy signs."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("fake-token", 4_102_444_800)


class FakeBearerPolicy(SansIOHTTPPolicy):
    """Sets the Authorization header the fake checks, over plain http."""

    def on_request(self, request: Any) -> None:
        request.http_request.headers["Authorization"] = "Bearer fake-token"
