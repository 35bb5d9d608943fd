"""mlops-vm's Lambda adapter: the model image's unchanged web app behind a function URL
or an Application Load Balancer.

At init (once per Lambda instance) it resolves the secret references, starts the image's
own command (app.json beside this file, written from the model image at build time) with
PORT=MLOPS_VM_APP_PORT, and waits until the readiness path (MLOPS_VM_READY_PATH) answers
200. Each invocation is a function-URL / HTTP API payload 2.0
event, sent on to the app as an HTTP request on 127.0.0.1; the app's status, headers and
body come back as the payload 2.0 response (binary bodies base64-encoded). An ALB event
(requestContext.elb) is answered in the ALB's shape: statusDescription, and multi-value
headers when the target group sends them (lambda.multi_value_headers.enabled).

Lambda takes at most 6 MB of request and of response per synchronous invoke: a larger
request is answered 413 and a larger response 502, each saying so, instead of an opaque
Lambda error; behind an ALB a response over the ALB's 1 MB limit is answered 502 naming
that limit. Standard library only (awslambdaric imports this module).
"""

import base64
import datetime
import hashlib
import hmac
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request

PAYLOAD_LIMIT = 6 * 1024 * 1024  # bytes, request and response, per synchronous invoke
ALB_RESPONSE_LIMIT = 1024 * 1024  # bytes of the response an ALB takes from a Lambda target
APP_HOST = "127.0.0.1"
APP_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "app.json")
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")
# Hop-by-hop headers (and what http.client sets itself) are not forwarded.
DROPPED_HEADERS = {"connection", "content-length", "host", "transfer-encoding", "keep-alive"}


def log(message):
    print(f"mlops-vm-lambda: {message}", file=sys.stderr, flush=True)


# Secrets: env var -> Secrets Manager / SSM Parameter Store ARN (MLOPS_VM_SECRETS, JSON),
# read with the function's role credentials, passed to the app's environment only.


def sign(method, url, region, service, body, headers, now=None):
    """SigV4 headers for a request (the credentials Lambda gives the execution role)."""
    now = now or datetime.datetime.now(datetime.UTC)
    parsed = urllib.parse.urlsplit(url)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    headers = {**headers, "host": parsed.netloc, "x-amz-date": amz_date}
    token = os.environ.get("AWS_SESSION_TOKEN")
    if token:
        headers["x-amz-security-token"] = token
    names = sorted(name.lower() for name in headers)
    lowered = {name.lower(): str(value).strip() for name, value in headers.items()}
    canonical = "\n".join(
        [
            method,
            parsed.path or "/",
            parsed.query,
            "".join(f"{name}:{lowered[name]}\n" for name in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + os.environ["AWS_SECRET_ACCESS_KEY"]).encode()
    for part in (amz_date[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={os.environ['AWS_ACCESS_KEY_ID']}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return headers


def aws_json_call(service, target, payload, region):
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or f"https://{service}.{region}.amazonaws.com"
    body = json.dumps(payload).encode()
    headers = sign(
        "POST",
        endpoint + "/",
        region,
        service,
        body,
        {"content-type": "application/x-amz-json-1.1", "x-amz-target": target},
    )
    request = urllib.request.Request(endpoint + "/", data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def resolve_secrets(references):
    """{env var: value} for {env var: ARN}; the values are never logged."""
    region = os.environ.get("AWS_REGION", "us-east-1")
    values = {}
    for name, arn in references.items():
        if ":secretsmanager:" in arn:
            answer = aws_json_call(
                "secretsmanager", "secretsmanager.GetSecretValue", {"SecretId": arn}, region
            )
            values[name] = answer["SecretString"]
        else:
            parameter = arn.split(":parameter", 1)[1]
            answer = aws_json_call(
                "ssm",
                "AmazonSSM.GetParameter",
                {"Name": parameter, "WithDecryption": True},
                region,
            )
            values[name] = answer["Parameter"]["Value"]
    return values


# The app: started once per instance, at init.


def app_environment(port):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_VM_")}
    env.pop("PYTHONPATH", None)  # the adapter's libraries stay the adapter's
    env.pop("_HANDLER", None)
    env["PORT"] = str(port)
    env.update(resolve_secrets(json.loads(os.environ.get("MLOPS_VM_SECRETS") or "{}")))
    return env


def wait_ready(process, port, path, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the model app exited with {process.returncode} while starting")
        try:
            with urllib.request.urlopen(f"http://{APP_HOST}:{port}{path}", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the model app did not answer {path} within {timeout_s:.0f}s")


def start_app():
    with open(APP_FILE) as file:
        app = json.load(file)
    port = int(os.environ.get("MLOPS_VM_APP_PORT") or app.get("port") or 8080)
    process = subprocess.Popen(
        app["command"], cwd=app.get("workdir") or "/", env=app_environment(port)
    )
    started = time.monotonic()
    wait_ready(
        process,
        port,
        os.environ.get("MLOPS_VM_READY_PATH", "/readyz"),
        float(os.environ.get("MLOPS_VM_READY_TIMEOUT_S", "60")),
    )
    log(f"model app ready on port {port} in {time.monotonic() - started:.2f}s")
    return process, port


# One invocation: a payload 2.0 event in, a payload 2.0 response out.


def error_response(status, message):
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"detail": message}),
        "isBase64Encoded": False,
    }


def request_body(event):
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()


def is_alb(event):
    return "elb" in (event.get("requestContext") or {})


def event_headers(event):
    """{name: value}: multi-value headers (ALB with them enabled) joined with commas."""
    if event.get("multiValueHeaders"):
        return {name: ",".join(values) for name, values in event["multiValueHeaders"].items()}
    return event.get("headers") or {}


def request_headers(event):
    headers = {
        name: value
        for name, value in event_headers(event).items()
        if name.lower() not in DROPPED_HEADERS
    }
    if event.get("cookies"):
        headers["cookie"] = "; ".join(event["cookies"])
    return headers


def response_payload(answer, body):
    headers, cookies = {}, []
    for name, value in answer.getheaders():
        lowered = name.lower()
        if lowered == "set-cookie":
            cookies.append(value)
        elif lowered not in DROPPED_HEADERS:
            headers[lowered] = f"{headers[lowered]},{value}" if lowered in headers else value
    content_type = headers.get("content-type", "")
    textual = content_type.startswith(TEXT_TYPES) or not body
    try:
        text = body.decode() if textual else None
    except UnicodeDecodeError:
        text = None
    payload = {
        "statusCode": answer.status,
        "headers": headers,
        "body": text if text is not None else base64.b64encode(body).decode(),
        "isBase64Encoded": text is None,
    }
    if cookies:
        payload["cookies"] = cookies
    return payload


def request_line(event):
    """(method, path with query) of a function-URL or an ALB event. The ALB passes the
    query string's parameters as the client sent them (still URL-encoded)."""
    if is_alb(event):
        multi = event.get("multiValueQueryStringParameters")
        pairs = (
            [(k, v) for k, values in multi.items() for v in values]
            if multi
            else list((event.get("queryStringParameters") or {}).items())
        )
        query = "&".join(f"{k}={v}" for k, v in pairs)
        path = event.get("path") or "/"
        return event.get("httpMethod", "GET"), path + ("?" + query if query else "")
    http_ = event.get("requestContext", {}).get("http", {})
    path = event.get("rawPath") or http_.get("path") or "/"
    if event.get("rawQueryString"):
        path += "?" + event["rawQueryString"]
    return http_.get("method", "GET"), path


def alb_payload(payload, multi_value, status_text):
    """PAYLOAD (payload 2.0) in the ALB's response shape."""
    headers = dict(payload["headers"])
    answer = {
        "statusCode": payload["statusCode"],
        "statusDescription": f"{payload['statusCode']} {status_text}".strip(),
        "body": payload["body"],
        "isBase64Encoded": payload["isBase64Encoded"],
    }
    if multi_value:
        values = {name: [value] for name, value in headers.items()}
        if payload.get("cookies"):
            values["set-cookie"] = list(payload["cookies"])
        answer["multiValueHeaders"] = values
    else:
        if payload.get("cookies"):  # one header per name: the last cookie only
            headers["set-cookie"] = payload["cookies"][-1]
        answer["headers"] = headers
    return answer


def forward(event, port, timeout_s):
    """EVENT (function URL or ALB) sent on to the app; its answer in the event's shape."""
    payload = forward_to_app(event, port, timeout_s)
    if not is_alb(event):
        return payload
    status_text = http.client.responses.get(payload["statusCode"], "")
    answer = alb_payload(payload, "multiValueHeaders" in event, status_text)
    if len(json.dumps(answer)) > ALB_RESPONSE_LIMIT:
        error = error_response(
            502,
            f"response over the Application Load Balancer's {ALB_RESPONSE_LIMIT} byte (1 MB) "
            "limit for a Lambda target: ask for less, or use the function URL (6 MB)",
        )
        return alb_payload(error, "multiValueHeaders" in event, "Bad Gateway")
    return answer


def forward_to_app(event, port, timeout_s):
    body = request_body(event)
    if len(body) > PAYLOAD_LIMIT or len(json.dumps(event)) > PAYLOAD_LIMIT:
        return error_response(
            413,
            f"request payload of {len(body)} bytes is over Lambda's {PAYLOAD_LIMIT} byte "
            "(6 MB) limit for a synchronous invoke: send fewer instances per request",
        )
    method, path = request_line(event)
    connection = http.client.HTTPConnection(APP_HOST, port, timeout=timeout_s)
    try:
        connection.request(method, path, body, request_headers(event))
        answer = connection.getresponse()
        data = answer.read()
    finally:
        connection.close()
    payload = response_payload(answer, data)
    if len(json.dumps(payload)) > PAYLOAD_LIMIT:
        return error_response(
            502, f"response over Lambda's {PAYLOAD_LIMIT} byte (6 MB) limit: ask for less"
        )
    return payload


APP = None


def handler(event, context):
    global APP  # one app per Lambda instance, started by the first call
    if APP is None or APP[0].poll() is not None:
        APP = start_app()
    remaining_s = context.get_remaining_time_in_millis() / 1000 if context else 30.0
    return forward(event, APP[1], max(1.0, remaining_s - 0.5))


if os.environ.get("AWS_LAMBDA_RUNTIME_API") and os.path.exists(APP_FILE):
    APP = start_app()  # at init: Lambda gives init its own time (and provisioned concurrency)
