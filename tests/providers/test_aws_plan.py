"""`--check` equals the run for the AWS provider (issue 20), against moto.

On a new environment, the dry runs of ensure_fleet and ensure_load_balancer (the LB step
planning in front of the fleet step's planned result, as the playbook runs them) list
exactly the changes the real runs then make: same action, kind and name, as many of each.
A second real run changes nothing; destroy's dry run lists exactly what destroy deletes.
Fixed fleet and scaling group both.

A target is named by its instance id, which a dry run cannot know: its plan names the
stand-in id of the instance it would launch (names.planned), so both sides are compared
by the instance's name.
"""

from collections import Counter
from collections.abc import Callable, Iterable

from mlops_vm.plan import Change
from mlops_vm.provision import FleetSpec, LoadBalancerSpec
from mlops_vm.provision.aws import AwsProvider
from mlops_vm.provision.aws import names as aws_names
from mlops_vm.provision.model import ROLE_MODEL
from tests.providers.test_aws import (
    aws_environment,
    boto,
    certificate,
    env,
    env_resources,
    fleet_spec,
    lb_spec,
    make_provider,
    moto_endpoint,
    provider,
    scaling_spec,
)

__all__ = [  # fixtures shared with the provider tests, found by pytest by their names
    "aws_environment",
    "boto",
    "certificate",
    "env",
    "fleet_spec",
    "lb_spec",
    "moto_endpoint",
    "provider",
]

Triple = tuple[str, str, str]


def provision(
    provider: AwsProvider, fleet: FleetSpec, lb: LoadBalancerSpec, *, dry_run: bool
) -> list[Change]:
    """The fleet, then the load balancer in front of the fleet step's (planned) result."""
    result = provider.ensure_fleet(fleet, dry_run=dry_run)
    return [*result.changes, *provider.ensure_load_balancer(lb, result, dry_run=dry_run).changes]


def triples(changes: Iterable[Change], instance_names: dict[str, str]) -> Counter[Triple]:
    """(action, kind, name) of each change, a target's name read as its instance's name."""
    return Counter(
        (c.action, c.kind, instance_names.get(c.name, c.name) if c.kind == "target" else c.name)
        for c in changes
    )


def assert_same(planned: Counter[Triple], done: Counter[Triple]) -> None:
    assert planned == done, (
        f"planned only: {sorted((planned - done).elements())}; "
        f"done only: {sorted((done - planned).elements())}"
    )


def nothing_made(boto: Callable, env: str) -> bool:
    return not any(env_resources(boto, env).values())


def assert_check_equals_run(
    provider: AwsProvider, fleet: FleetSpec, lb: LoadBalancerSpec, boto: Callable
) -> Counter[Triple]:
    """Check, run, run again, check destroy, destroy, destroy again; what the run made."""
    planned = provision(provider, fleet, lb, dry_run=True)
    assert nothing_made(boto, fleet.env), "the dry run made something"
    done = provision(provider, fleet, lb, dry_run=False)
    # Each instance by its name: its real id, and the stand-in the plan gave it.
    instance_names: dict[str, str] = {}
    for instance in provider.list_instances(fleet.env):
        instance_names[instance.id] = instance.name
        instance_names[aws_names.planned("i", instance.name)] = instance.name
    made = triples(done, instance_names)
    assert_same(triples(planned, instance_names), made)
    assert provision(provider, fleet, lb, dry_run=False) == []

    planned_removal = provider.destroy(fleet.env, dry_run=True)
    assert not nothing_made(boto, fleet.env), "the destroy dry run deleted something"
    removed = provider.destroy(fleet.env)
    assert_same(triples(planned_removal, {}), triples(removed, {}))
    assert {c.action for c in removed} == {"delete"}
    assert nothing_made(boto, fleet.env)
    assert provider.destroy(fleet.env) == []
    return made


def test_check_equals_run_for_a_fixed_fleet(provider, fleet_spec, lb_spec, boto, env):
    made = assert_check_equals_run(provider, fleet_spec(2), lb_spec, boto)
    # Everything a new fixed fleet behind an ALB needs, the targets by their instances.
    assert {(action, kind) for action, kind, _ in made} >= {
        ("create", kind)
        for kind in (
            "vpc",
            "internet_gateway",
            "subnet",
            "route_table",
            "security_group",
            "instance",
            "certificate",
            "target_group",
            "load_balancer",
            "listener",
            "target",
        )
    }
    assert sorted(name for _, kind, name in made.elements() if kind == "target") == [
        f"{env}-{ROLE_MODEL}-1",
        f"{env}-{ROLE_MODEL}-2",
    ]


def test_check_equals_run_for_a_scaling_group(moto_endpoint, fleet_spec, lb_spec, boto):
    # moto has no instance refresh (test_aws.py answers it with FakeRefreshes).
    provider = make_provider(moto_endpoint, instance_refresh=False)
    made = assert_check_equals_run(provider, scaling_spec(fleet_spec), lb_spec, boto)
    assert {(action, kind) for action, kind, _ in made} >= {
        ("create", "launch_template"),
        ("create", "scaling_group"),
        ("create", "scaling_policy"),
        ("update", "scaling_group"),  # attached to the target group
        ("create", "load_balancer"),
    }
