"""`--check` on a new environment lists exactly what the real run then does (issue 20):
the same (action, kind, name) changes, a second run none, and destroy's dry run what
destroy then deletes. One helper for every provider; a target's test compares the same way.
"""

from collections import Counter
from collections.abc import Iterable

from mlops_vm.plan import Change
from mlops_vm.provision import FleetSpec, LoadBalancerSpec, Provider


def triples(changes: Iterable[Change]) -> Counter[tuple[str, str, str]]:
    """What a change list does, in any order (calls started together finish in any order)."""
    return Counter((c.action, c.kind, c.name) for c in changes)


def assert_same(planned: Iterable[Change], done: Iterable[Change]) -> None:
    plan, run = triples(planned), triples(done)
    assert plan == run, f"planned only: {sorted((plan - run).elements())}; " + (
        f"done only: {sorted((run - plan).elements())}"
    )


def provision(
    provider: Provider, fleet: FleetSpec, lb: LoadBalancerSpec | None, *, dry_run: bool
) -> list[Change]:
    """The provision steps as the playbook runs them: the fleet, then the LB in front of
    the fleet step's result (in check mode, the planned one)."""
    result = provider.ensure_fleet(fleet, dry_run=dry_run)
    changes = list(result.changes)
    if lb is not None:
        changes += provider.ensure_load_balancer(lb, result, dry_run=dry_run).changes
    return changes


def assert_check_equals_run(
    provider: Provider, fleet: FleetSpec, lb: LoadBalancerSpec | None = None
) -> list[Change]:
    """Check, run, run again, check destroy, destroy, destroy again; the run's changes."""
    planned = provision(provider, fleet, lb, dry_run=True)
    assert planned, "a new environment plans changes"
    assert provider.list_instances(fleet.env) == [], "the dry run created instances"
    done = provision(provider, fleet, lb, dry_run=False)
    assert_same(planned, done)
    assert provision(provider, fleet, lb, dry_run=False) == []
    planned_removal = provider.destroy(fleet.env, dry_run=True)
    assert provider.list_instances(fleet.env), "the destroy dry run deleted instances"
    removed = provider.destroy(fleet.env)
    assert_same(planned_removal, removed)
    assert triples(removed) == triples(c for c in removed if c.action == "delete")
    assert provider.destroy(fleet.env) == []
    return done
