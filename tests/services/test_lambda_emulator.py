"""The Lambda data plane for real: the lambda target's derived image (the unchanged model
image + awslambdaric + the adapter, built by mlops_vm/services/lambda_/image.py) run under
the official Lambda Runtime Interface Emulator on the local Docker engine, invoked with
function-URL (payload 2.0) events. Not a contract check: the image, the runtime client,
the adapter and the web app all run as on Lambda (read-only root, non-root user).
"""

import base64
import json
import time

import pytest
from sklearn.datasets import load_iris

from mlops_vm.services import ServiceSpec
from mlops_vm.services.lambda_ import limits
from tests.services.lambda_fixtures import emulated, emulators, predictions, url_event

__all__ = ["emulators"]  # the session's emulators, shared with the control-plane tests

pytestmark = pytest.mark.slow
SPEC = ServiceSpec(env="rie", name="rie", image="", memory_mb=2048)


@pytest.fixture(scope="module")
def function(emulators):
    return emulated(emulators, "1.0", SPEC)


def test_predict_cold_then_warm_matches_the_reference_model(function, reference_model):
    """Real run: the first invoke starts the app (cold), the next ones reuse it (warm)."""
    rows = load_iris().data[::10]
    body = json.dumps({"instances": rows.tolist()})
    started = time.monotonic()
    cold = function.invoke(url_event("POST", "/predict", body))
    cold_s = time.monotonic() - started
    assert predictions(cold) == reference_model.predict(rows).tolist()
    assert cold["headers"]["content-type"] == "application/json"
    assert cold["isBase64Encoded"] is False
    warm = []
    for _ in range(20):
        started = time.monotonic()
        assert predictions(function.invoke(url_event("POST", "/predict", body))) == predictions(
            cold
        )
        warm.append(time.monotonic() - started)
    warm.sort()
    print(
        f"lambda emulator: cold {cold_s * 1000:.0f} ms, warm p50 {warm[9] * 1000:.1f} ms, "
        f"p99 (max of 20) {warm[-1] * 1000:.1f} ms"
    )
    assert warm[9] < cold_s  # the app is started once per instance


def test_base64_body_and_malformed_input(function):
    """Real run: a base64 request body is decoded; input the app refuses answers 422."""
    body = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode()
    encoded = url_event("POST", "/predict", base64.b64encode(body), isBase64Encoded=True)
    assert predictions(function.invoke(encoded)) == [0]
    malformed = function.invoke(url_event("POST", "/predict", '{"instances": "five"}'))
    assert malformed["statusCode"] == 422, malformed
    missing = function.invoke(url_event("GET", "/nowhere"))
    assert missing["statusCode"] == 404


def test_a_payload_over_6_mb_never_reaches_the_app(function):
    """Real run: an event over Lambda's 6 MB synchronous limit is not delivered intact
    (Lambda answers the caller 413 before the function; the emulator cuts it at 6 MB and
    the runtime client refuses it): no prediction comes back. The adapter's own 413, for
    a body that reaches it over the limit, is tested in test_lambda_adapter.py."""
    rows = [[5.1, 3.5, 1.4, 0.2]] * 300_000
    body = json.dumps({"instances": rows})
    assert len(body) > limits.PAYLOAD_BYTES
    answer = function.invoke(url_event("POST", "/predict", body))
    assert "statusCode" not in answer and answer["errorType"] == "Runtime.UnmarshalError"


def alb_event(method: str, path: str, body: bytes, *, encoded: bool = True) -> dict:
    """An event as an Application Load Balancer sends it to a Lambda target."""
    return {
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:tg"}},
        "httpMethod": method,
        "path": path,
        "queryStringParameters": {},
        "headers": {"content-type": "application/json", "host": "model.example.test"},
        "body": base64.b64encode(body).decode() if encoded else body.decode(),
        "isBase64Encoded": encoded,
    }


def test_an_alb_event_for_predict_and_a_response_over_the_alb_limit(function):
    """Real run: an ALB-shaped POST /predict (base64 body) is answered in the ALB's shape;
    an answer over the ALB's 1 MB limit for a Lambda target (here the app's 422, which
    echoes a 1.1 MB malformed input) is a 502 naming the limit."""
    body = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode()
    answer = function.invoke(alb_event("POST", "/predict", body))
    assert answer["statusDescription"] == "200 OK"
    assert predictions(answer) == [0]
    malformed = json.dumps({"instances": "x" * 1_100_000}).encode()
    too_large = function.invoke(alb_event("POST", "/predict", malformed, encoded=False))
    assert too_large["statusCode"] == 502, too_large.get("statusCode")
    assert too_large["statusDescription"] == "502 Bad Gateway"
    assert "1 MB" in json.loads(too_large["body"])["detail"]
