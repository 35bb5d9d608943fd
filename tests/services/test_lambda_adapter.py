"""The Lambda adapter's parts that the emulator runs do not reach (no Docker): secret
references resolved over the Secrets Manager and SSM JSON APIs (a contract check against
moto, which does not verify SigV4 signatures), and binary bodies returned base64-encoded
(a real HTTP server on 127.0.0.1)."""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlops_vm import paths
from tests.providers.test_aws import REGION, aws_environment, boto, moto_endpoint
from tests.source_files import load_source_file

__all__ = ["aws_environment", "boto", "moto_endpoint"]  # fixtures shared with the AWS tests

ADAPTER = paths.IMAGES_DIR / "lambda-adapter" / "mlops_vm_lambda_adapter.py"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


@pytest.fixture(scope="module")
def adapter():
    return load_source_file("mlops_vm_lambda_adapter", ADAPTER)


def test_secret_references_resolve_to_values(adapter, boto, moto_endpoint, monkeypatch):
    """Contract (moto): the adapter's own SigV4 JSON calls read both kinds of reference."""
    secret = boto("secretsmanager").create_secret(Name="api", SecretString="s3cr3t")["ARN"]
    boto("ssm").put_parameter(Name="/iris/db", Value="p4ss", Type="SecureString")
    parameter = f"arn:aws:ssm:{REGION}:123456789012:parameter/iris/db"
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session")
    values = adapter.resolve_secrets({"API_TOKEN": secret, "DB_PASSWORD": parameter})
    assert values == {"API_TOKEN": "s3cr3t", "DB_PASSWORD": "p4ss"}


class Binary(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Set-Cookie", "a=1")
        self.send_header("Set-Cookie", "b=2")
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        self.wfile.write(PNG)

    def log_message(self, *args):
        pass


def test_binary_answers_are_base64_and_cookies_apart(adapter):
    """Real run: a binary body comes back base64-encoded, Set-Cookie as `cookies`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Binary)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        event = {"rawPath": "/logo.png", "requestContext": {"http": {"method": "GET"}}}
        answer = adapter.forward(event, server.server_address[1], 5)
    finally:
        server.shutdown()
    assert answer["statusCode"] == 200 and answer["isBase64Encoded"] is True
    assert base64.b64decode(answer["body"]) == PNG
    assert answer["cookies"] == ["a=1", "b=2"]
    assert answer["headers"]["content-type"] == "image/png"


def test_a_body_over_6_mb_is_answered_413_naming_the_limit(adapter):
    """Real run of the adapter's check (before any request to the app: port 9 is closed)."""
    event = {
        "rawPath": "/predict",
        "requestContext": {"http": {"method": "POST"}},
        "body": base64.b64encode(b"x" * (adapter.PAYLOAD_LIMIT + 1)).decode(),
        "isBase64Encoded": True,
    }
    answer = adapter.forward(event, 9, 5)
    assert answer["statusCode"] == 413
    assert "6 MB" in answer["body"] and str(adapter.PAYLOAD_LIMIT) in answer["body"]


class Echo(BaseHTTPRequestHandler):
    """POST: the request line, a header and the body back as JSON; GET /big: over 1 MB."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.answer(
            json.dumps(
                {"path": self.path, "tenant": self.headers["x-tenant"], "body": body.decode()}
            ).encode()
        )

    def do_GET(self):
        self.answer(json.dumps({"rows": "x" * (1024 * 1024)}).encode())

    def answer(self, data):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def echo_port():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def alb_event(method, path, *, body=b"", multi_value=False):
    """An ALB event as Elastic Load Balancing sends it to a Lambda target."""
    event = {
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:tg"}},
        "httpMethod": method,
        "path": path,
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }
    if multi_value:
        event["multiValueHeaders"] = {"x-tenant": ["a", "b"]}
        event["multiValueQueryStringParameters"] = {"v": ["1", "2"]}
    else:
        event["headers"] = {"x-tenant": "a"}
        event["queryStringParameters"] = {"v": "1"}
    return event


def test_an_alb_post_predict_reaches_the_app_and_answers_in_the_alb_shape(adapter, echo_port):
    """Real run: base64 body decoded, query and header passed, statusDescription set."""
    event = alb_event("POST", "/predict", body=b'{"instances": [[1, 2]]}')
    answer = adapter.forward(event, echo_port, 5)
    assert answer["statusCode"] == 200 and answer["statusDescription"] == "200 OK"
    assert answer["headers"]["content-type"] == "application/json"
    assert "multiValueHeaders" not in answer
    sent = json.loads(answer["body"])
    assert sent == {"path": "/predict?v=1", "tenant": "a", "body": '{"instances": [[1, 2]]}'}


def test_multi_value_headers_in_and_out(adapter, echo_port):
    answer = adapter.forward(alb_event("POST", "/predict", multi_value=True), echo_port, 5)
    assert answer["multiValueHeaders"]["content-type"] == ["application/json"]
    assert "headers" not in answer
    sent = json.loads(answer["body"])
    assert sent["path"] == "/predict?v=1&v=2" and sent["tenant"] == "a,b"


def test_an_answer_over_the_alb_limit_is_a_502_naming_it(adapter, echo_port):
    answer = adapter.forward(alb_event("GET", "/big"), echo_port, 5)
    assert answer["statusCode"] == 502 and answer["statusDescription"] == "502 Bad Gateway"
    assert "1 MB" in json.loads(answer["body"])["detail"]
    # The same answer through a function URL is under its 6 MB limit: passed on.
    url_event = {"rawPath": "/big", "requestContext": {"http": {"method": "GET"}}}
    assert adapter.forward(url_event, echo_port, 5)["statusCode"] == 200
