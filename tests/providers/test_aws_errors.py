"""How the AWS provider treats errors: classification, hints, retries with backoff.

No server here: the context's client is a stand-in that raises the botocore errors AWS
would answer with, so every code path is reached without waiting for a real failure.
"""

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from mlops_vm.provision import ErrorCode, ProviderSettings, ProvisionError
from mlops_vm.provision.aws import errors
from mlops_vm.provision.aws.client import AwsContext


def client_error(code: str, status: int = 400, message: str = "it went wrong") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "RunInstances",
    )


class ScriptedClient:
    """Answers run_instances with the scripted errors, then with a result."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0

    def run_instances(self, **params):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return {"Instances": [{"InstanceId": "i-1", **params}]}


@pytest.fixture
def sleeps() -> list[float]:
    return []


def context(client: ScriptedClient, sleeps: list[float], **options) -> AwsContext:
    settings = ProviderSettings(
        name="aws",
        region="eu-west-1",
        endpoint_url="http://127.0.0.1:9",
        options={"retry_attempts": 4, "retry_base_delay_s": 0.2, **options},
    )
    ctx = AwsContext(settings, sleep=sleeps.append)
    ctx._clients["ec2"] = client
    return ctx


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("AuthFailure", ErrorCode.AUTH),
        ("UnrecognizedClientException", ErrorCode.AUTH),
        ("InvalidClientTokenId", ErrorCode.AUTH),
        ("UnauthorizedOperation", ErrorCode.PERMISSION),
        ("AccessDenied", ErrorCode.PERMISSION),
        ("InstanceLimitExceeded", ErrorCode.QUOTA),
        ("VcpuLimitExceeded", ErrorCode.QUOTA),
        ("LimitExceeded", ErrorCode.QUOTA),
        ("TooManyLoadBalancers", ErrorCode.QUOTA),
        ("InsufficientInstanceCapacity", ErrorCode.CAPACITY),
        ("Unsupported", ErrorCode.CAPACITY),
        ("InvalidVpcID.NotFound", ErrorCode.NOT_FOUND),
        ("LoadBalancerNotFound", ErrorCode.NOT_FOUND),
        ("ResourceNotFoundException", ErrorCode.NOT_FOUND),
        ("DependencyViolation", ErrorCode.CONFLICT),
        ("InvalidParameterValue", ErrorCode.INVALID_INPUT),
        ("SomethingNew", ErrorCode.INTERNAL),
    ],
)
def test_errors_are_classified_and_explained(sleeps, code, expected):
    client = ScriptedClient(client_error(code))
    with pytest.raises(ProvisionError) as raised:
        context(client, sleeps).call("ec2", "run_instances", "launch instance web-1")
    error = raised.value
    assert error.code == expected
    assert error.operation == "launch instance web-1"
    assert code in error.message
    assert error.hint
    assert client.calls == 1 and sleeps == []  # not worth a retry


def test_hints_say_what_to_do():
    assert "credentials" in errors.HINTS[ErrorCode.AUTH]
    assert "IAM" in errors.HINTS[ErrorCode.PERMISSION]
    assert "Service Quotas" in errors.HINTS[ErrorCode.QUOTA]
    assert "instance type" in errors.HINTS[ErrorCode.CAPACITY]


def test_auto_scaling_not_found_is_not_found():
    missing = ClientError(
        {"Error": {"Code": "ValidationError", "Message": "AutoScalingGroup name not found"}},
        "DeleteAutoScalingGroup",
    )
    assert errors.classify(missing) == ErrorCode.NOT_FOUND
    refused = ClientError(
        {"Error": {"Code": "ValidationError", "Message": "MaxSize must be >= MinSize"}},
        "UpdateAutoScalingGroup",
    )
    assert errors.classify(refused) == ErrorCode.INVALID_INPUT


@pytest.mark.parametrize(
    "transient",
    [
        client_error("Throttling"),
        client_error("RequestLimitExceeded", 503),
        client_error("InternalError", 500),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
    ],
)
def test_transient_errors_are_retried_with_jittered_backoff(sleeps, transient):
    client = ScriptedClient(transient, transient)
    result = context(client, sleeps).call("ec2", "run_instances", "launch", ImageId="ami-1")
    assert result["Instances"][0]["ImageId"] == "ami-1"
    assert client.calls == 3
    # Full jitter: each wait is drawn from [0, base * 2**attempt].
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.2 and 0 <= sleeps[1] <= 0.4


def test_throttling_that_never_stops_surfaces_as_throttled(sleeps):
    client = ScriptedClient(*[client_error("Throttling")] * 10)
    with pytest.raises(ProvisionError) as raised:
        context(client, sleeps).call("ec2", "run_instances", "launch instance web-1")
    assert raised.value.code == ErrorCode.THROTTLED
    assert client.calls == 4  # retry_attempts
    assert len(sleeps) == 3


def throttled(retry_after: str) -> ClientError:
    error = client_error("Throttling", 429)
    error.response["ResponseMetadata"]["HTTPHeaders"] = {"retry-after": retry_after}
    return error


def test_a_retry_after_is_waited_out_in_full(sleeps):
    client = ScriptedClient(throttled("7"))
    context(client, sleeps).call("ec2", "run_instances", "launch", ImageId="ami-1")
    assert client.calls == 2
    assert sleeps == [7.0]  # what AWS asked, not the 0.2 s backoff


def test_a_wait_beyond_the_retry_budget_is_not_slept(sleeps):
    client = ScriptedClient(throttled("600"))
    with pytest.raises(ProvisionError) as raised:
        context(client, sleeps, retry_budget_s=60).call("ec2", "run_instances", "launch")
    assert raised.value.code == ErrorCode.THROTTLED
    assert "retry budget" in raised.value.message and "retry_budget_s" in raised.value.hint
    assert client.calls == 1 and sleeps == []


def test_an_unreachable_endpoint_names_the_endpoint_setting(sleeps):
    client = ScriptedClient(*[EndpointConnectionError(endpoint_url="http://127.0.0.1:9")] * 4)
    with pytest.raises(ProvisionError) as raised:
        context(client, sleeps).call("ec2", "run_instances", "launch")
    assert raised.value.code == ErrorCode.INTERNAL
    assert "endpoint_url" in raised.value.hint


def test_missing_credentials_are_an_auth_error(sleeps):
    with pytest.raises(ProvisionError) as raised:
        context(ScriptedClient(NoCredentialsError()), sleeps).call("ec2", "run_instances", "x")
    assert raised.value.code == ErrorCode.AUTH
    assert "credentials" in raised.value.hint


def test_not_found_on_delete_is_success(sleeps):
    client = ScriptedClient(client_error("InvalidInstanceID.NotFound"))
    assert context(client, sleeps).call("ec2", "run_instances", "x", missing_ok=True) == {}
    # Other failures still surface when missing_ok is set.
    client = ScriptedClient(client_error("UnauthorizedOperation"))
    with pytest.raises(ProvisionError):
        context(client, sleeps).call("ec2", "run_instances", "x", missing_ok=True)


def test_waiters_time_out_with_their_limit_in_the_message(sleeps):
    ctx = context(ScriptedClient(), sleeps, poll_interval_s=0.01)
    with pytest.raises(ProvisionError) as raised:
        ctx.wait_until(lambda: None, "the moon is full", timeout_s=0.05)
    assert raised.value.code == ErrorCode.TIMEOUT
    assert "the moon is full" in raised.value.message
    assert sleeps and set(sleeps) == {0.01}


def test_a_state_waiter_returns_the_resource_once_ready_even_when_it_is_none(sleeps):
    ctx = context(ScriptedClient(), sleeps, poll_interval_s=0.01)
    states = iter(["pending", "pending", "active"])
    assert ctx.wait_for_state(lambda: (next(states), "", None), "active", "lb", fix="-") is None
    assert len(sleeps) == 2
    states = iter(["pending", "available"])
    found = ctx.wait_for_state(lambda: (next(states), "", {"id": 1}), "available", "x", fix="-")
    assert found == {"id": 1}


def test_a_state_waiter_stops_at_once_on_failed_with_the_reason_and_the_fix(sleeps):
    ctx = context(ScriptedClient(), sleeps, poll_interval_s=0.01)
    with pytest.raises(ProvisionError) as raised:
        ctx.wait_for_state(
            lambda: ("failed", "out of capacity", None), "available", "image ami-1", fix="bake"
        )
    assert raised.value.code == ErrorCode.INTERNAL
    assert raised.value.message == "image ami-1 failed: out of capacity"
    assert raised.value.hint == "bake"
    assert sleeps == []


def test_a_yes_no_waiter_polls_until_the_condition_holds(sleeps):
    ctx = context(ScriptedClient(), sleeps, poll_interval_s=0.01)
    answers = iter([False, False, True])
    ctx.wait_for(lambda: next(answers), "it holds")
    assert len(sleeps) == 2
    with pytest.raises(ProvisionError) as raised:
        ctx.wait_for(lambda: False, "never", timeout_s=0.05)
    assert raised.value.code == ErrorCode.TIMEOUT


def test_no_region_is_invalid_input(monkeypatch):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    ctx = AwsContext(ProviderSettings(name="aws"))
    with pytest.raises(ProvisionError) as raised:
        ctx.client("ec2")
    assert raised.value.code == ErrorCode.INVALID_INPUT
    assert "region" in raised.value.hint


def test_option_types_are_checked():
    with pytest.raises(ProvisionError) as raised:
        AwsContext(
            ProviderSettings(name="aws", region="eu-west-1", options={"poll_interval_s": "soon"})
        )
    assert raised.value.code == ErrorCode.INVALID_INPUT
    assert "poll_interval_s" in raised.value.message


def test_boolean_options_read_from_text():
    settings = ProviderSettings(
        name="aws", region="eu-west-1", options={"instance_refresh": "false"}
    )
    assert AwsContext(settings).options.instance_refresh is False
    with pytest.raises(ProvisionError):
        AwsContext(
            ProviderSettings(name="aws", region="eu-west-1", options={"instance_refresh": "maybe"})
        )
