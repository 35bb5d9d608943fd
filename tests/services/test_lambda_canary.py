"""The Lambda canary: the alias's weighted share judged from CloudWatch, and the figures
`status` shows per version. Against moto in server mode (the control plane: the function,
its versions, the alias and its routing; CloudWatch's GetMetricData answering the series
recorded with PutMetricData, as Lambda records them: per alias and ExecutedVersion), the
readiness invokes answered by a stand-in of the Runtime Interface Emulator's Invoke API
(the images are not what is tested here: tests/services/test_lambda.py runs them)."""

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlops_vm.commands.status import figures_rows, platform_figures
from mlops_vm.plan import ChangeLog
from mlops_vm.provision import ErrorCode, ProviderSettings, ProvisionError
from mlops_vm.services import get_service_target
from mlops_vm.services.lambda_ import LambdaTarget, names
from mlops_vm.services.lambda_ import release as releases
from mlops_vm.services.lambda_.metrics import alias_dimensions
from mlops_vm.services.settings import LambdaServiceConfig
from tests.providers.test_aws import FAST, REGION, aws_environment, boto, moto_endpoint

__all__ = ["aws_environment", "boto", "moto_endpoint"]  # shared fixtures

ROLE = "arn:aws:iam::123456789012:role/mlops-vm-lambda"


class _Ready(BaseHTTPRequestHandler):
    """The Invoke API's answer of a version that is ready: the adapter's 200."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"statusCode": 200, "body": "{}"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def invoke_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def target(moto_endpoint: str) -> LambdaTarget:
    settings = ProviderSettings(
        name="aws", region=REGION, endpoint_url=moto_endpoint, options=dict(FAST)
    )
    found = get_service_target("lambda", settings)
    assert isinstance(found, LambdaTarget)
    return found


def function_on_version_1(boto: Callable, env: str) -> str:
    """A function tagged with ENV, versions 1 and 2 published, the alias on 1."""
    name = f"mlops-vm-{env}"
    client = boto("lambda")
    boto("iam").create_role(RoleName=ROLE.rsplit("/", 1)[1], AssumeRolePolicyDocument="{}")
    client.create_function(
        FunctionName=name,
        Role=ROLE,
        PackageType="Image",
        Code={"ImageUri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/m:1"},
        Tags={"mlops-vm/env": env},
    )
    client.publish_version(FunctionName=name)
    client.update_function_code(
        FunctionName=name, ImageUri="123456789012.dkr.ecr.eu-west-1.amazonaws.com/m:2"
    )
    client.publish_version(FunctionName=name)
    client.create_alias(FunctionName=name, Name=names.ALIAS, FunctionVersion="1")
    return name


def record(
    boto: Callable, name: str, version: str, invocations: int, errors: int, durations_ms: list
) -> None:
    """What Lambda records for VERSION run through the alias over the last minute."""
    when = datetime.now(UTC) - timedelta(seconds=20)
    dimensions = [{"Name": k, "Value": v} for k, v in alias_dimensions(name, version).items()]
    whole = [{"Name": k, "Value": v} for k, v in alias_dimensions(name).items()]
    data = [
        {"MetricName": "Invocations", "Value": invocations, "Unit": "Count"},
        {"MetricName": "Errors", "Value": errors, "Unit": "Count"},
        {"MetricName": "Duration", "Values": durations_ms, "Unit": "Milliseconds"},
    ]
    for dims in (dimensions, whole):
        boto("cloudwatch").put_metric_data(
            Namespace="AWS/Lambda",
            MetricData=[{**d, "Dimensions": dims, "Timestamp": when} for d in data],
        )


def options(invoke_url: str, **canary: object) -> LambdaServiceConfig:
    return LambdaServiceConfig(
        canary_percent=10,
        invoke_endpoint_url=invoke_url,
        canary={"enabled": True, "window_s": 0, "min_requests": 50, **canary},
    )


def shift_to_2(target: LambdaTarget, name: str, config: LambdaServiceConfig) -> None:
    releases.shift(
        target.ctx,
        ChangeLog(dry_run=False),
        config,
        name,
        "2",
        readiness_path="/readyz",
        timeout_s=5,
        source="deploy",
    )


def alias(boto: Callable, name: str) -> tuple[str, dict]:
    found = boto("lambda").get_alias(FunctionName=name, Name=names.ALIAS)
    return found["FunctionVersion"], found["RoutingConfig"]["AdditionalVersionWeights"]


def test_a_canary_that_serves_as_well_is_promoted(target, boto, invoke_url):
    name = function_on_version_1(boto, f"lc{uuid.uuid4().hex[:6]}")
    record(boto, name, "1", 900, 9, [40.0] * 99 + [80.0])
    record(boto, name, "2", 100, 1, [42.0] * 99 + [85.0])
    shift_to_2(target, name, options(invoke_url))
    assert alias(boto, name) == ("2", {})


def test_a_canary_with_more_errors_is_rolled_back_naming_the_figures(target, boto, invoke_url):
    name = function_on_version_1(boto, f"lc{uuid.uuid4().hex[:6]}")
    record(boto, name, "1", 900, 9, [40.0] * 100)
    record(boto, name, "2", 100, 12, [40.0] * 100)
    with pytest.raises(ProvisionError) as failed:
        shift_to_2(target, name, options(invoke_url))
    assert failed.value.code == ErrorCode.CANARY
    assert "5xx share 12.0% against 1.0%" in failed.value.message
    assert "100 requests" in failed.value.message and "900 requests" in failed.value.message
    assert alias(boto, name) == ("1", {})  # the whole alias back on the old version


def test_a_slower_canary_is_rolled_back_on_its_p99(target, boto, invoke_url):
    name = function_on_version_1(boto, f"lc{uuid.uuid4().hex[:6]}")
    record(boto, name, "1", 900, 0, [40.0] * 99 + [100.0])
    record(boto, name, "2", 100, 0, [120.0] * 99 + [300.0])
    with pytest.raises(ProvisionError) as failed:
        shift_to_2(target, name, options(invoke_url))
    assert "p99 latency 120 ms against 40 ms" in failed.value.message  # nearest rank
    assert alias(boto, name) == ("1", {})


def test_a_quiet_canary_is_not_judged_and_goes_on(target, boto, invoke_url):
    name = function_on_version_1(boto, f"lc{uuid.uuid4().hex[:6]}")
    record(boto, name, "1", 30, 0, [40.0])
    record(boto, name, "2", 3, 3, [900.0])  # all errors, but 3 requests say nothing
    shift_to_2(target, name, options(invoke_url))
    assert alias(boto, name) == ("2", {})


def test_status_figures_per_version_from_cloudwatch(target, boto):
    env = f"lc{uuid.uuid4().hex[:6]}"
    name = function_on_version_1(boto, env)
    record(boto, name, "1", 600, 6, [30.0] * 50 + [60.0] * 49 + [200.0])
    figures = target.figures(env, 60)
    assert set(figures) == {"version 1", f"alias {names.ALIAS}"}
    version = figures["version 1"]
    assert (version.requests, version.errors, version.seconds) == (600, 6, 60)
    assert version.rate == 10 and version.error_share == 0.01
    assert (version.p50_ms, version.p99_ms) == (30.0, 60.0)
    assert version.as_json()["requests_per_s"] == 10
    printed = dict(figures_rows(platform_figures(target.figures, env, 60)))
    assert printed["version 1"] == "60 s: 10.0 req/s, 5xx 1.0%, p50 30 ms, p99 60 ms"
