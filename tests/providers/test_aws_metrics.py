"""The AWS provider's figures (and ECS's, behind the same ALB) from CloudWatch: per target
group of ENV's ALB, RequestCount / HTTPCode_Target_5XX_Count summed over the window,
TargetResponseTime's p50 / p99 (seconds -> ms) and average. Against moto in server mode:
the ALB and target group tagged as the provider tags them, the series recorded with
PutMetricData under the ALB's dimensions (moto taught extended statistics)."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from mlops_vm.commands.status import figures_rows, platform_figures
from mlops_vm.provision import ProviderSettings, get_provider
from mlops_vm.provision.aws.metrics import target_group_dimensions
from mlops_vm.provision.model import TAG_ENV
from mlops_vm.services import get_service_target
from tests.providers.test_aws import FAST, REGION, aws_environment, boto, moto_endpoint

__all__ = ["aws_environment", "boto", "moto_endpoint"]  # shared fixtures


def alb_of(boto: Callable, env: str) -> tuple[str, str, str]:
    """ENV's ALB and target group, tagged as the provider tags them: (lb, tg ARN, tg name)."""
    ec2, elb = boto("ec2"), boto("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24", AvailabilityZone=f"{REGION}{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in enumerate("ab")
    ]
    tags = [{"Key": TAG_ENV, "Value": env}]
    lb = elb.create_load_balancer(Name=f"lb-{env}", Subnets=subnets, Tags=tags)
    lb_arn = lb["LoadBalancers"][0]["LoadBalancerArn"]
    name = f"tg-{env}"
    group = elb.create_target_group(
        Name=name, Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="instance", Tags=tags
    )["TargetGroups"][0]["TargetGroupArn"]
    elb.create_listener(
        LoadBalancerArn=lb_arn,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": group}],
    )
    return lb_arn, group, name


def record_alb(boto: Callable, lb_arn: str, group: str, requests: int, errors: int, seconds):
    when = datetime.now(UTC) - timedelta(seconds=20)
    dims = [{"Name": k, "Value": v} for k, v in target_group_dimensions(group, lb_arn).items()]
    boto("cloudwatch").put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            {**d, "Dimensions": dims, "Timestamp": when}
            for d in (
                {"MetricName": "RequestCount", "Value": requests, "Unit": "Count"},
                {"MetricName": "HTTPCode_Target_5XX_Count", "Value": errors, "Unit": "Count"},
                {"MetricName": "TargetResponseTime", "Values": seconds, "Unit": "Seconds"},
            )
        ],
    )


def settings(moto_endpoint: str) -> ProviderSettings:
    return ProviderSettings(
        name="aws", region=REGION, endpoint_url=moto_endpoint, options=dict(FAST)
    )


def test_provider_figures_per_target_group(boto, moto_endpoint):
    env = f"am{uuid.uuid4().hex[:6]}"
    lb_arn, group, name = alb_of(boto, env)
    record_alb(boto, lb_arn, group, 1200, 24, [0.020] * 50 + [0.040] * 49 + [0.5])
    found = get_provider(settings(moto_endpoint)).figures(env, 120)
    figures = found[f"target group {name}"]
    assert (figures.requests, figures.errors, figures.seconds) == (1200, 24, 120)
    assert figures.rate == 10 and figures.error_share == 0.02
    assert (figures.p50_ms, figures.p99_ms) == (20, 40)  # nearest rank of the 100 samples
    assert figures.mean_ms == pytest.approx((50 * 20 + 49 * 40 + 500) / 100)
    provider = get_provider(settings(moto_endpoint))
    printed = dict(figures_rows(platform_figures(provider.figures, env, 120)))
    assert printed[f"target group {name}"] == "120 s: 10.0 req/s, 5xx 2.0%, p50 20 ms, p99 40 ms"
    # Another environment's load balancer is not counted; an environment without one: none.
    assert get_provider(settings(moto_endpoint)).figures(f"other{env}", 120) == {}


def test_ecs_figures_are_its_alb_target_groups(boto, moto_endpoint):
    env = f"am{uuid.uuid4().hex[:6]}"
    lb_arn, group, name = alb_of(boto, env)
    record_alb(boto, lb_arn, group, 60, 0, [0.010] * 10)
    found = get_service_target("ecs", settings(moto_endpoint)).figures(env, 60)
    assert found[f"target group {name}"].requests == 60
    assert found[f"target group {name}"].p99_ms == 10
