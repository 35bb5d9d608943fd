"""The provider contract, run against every provider (libcloud's mixin idea).

A provider's test module subclasses ProviderContract and supplies three fixtures:
  provider       a Provider aimed at its emulator/fake, for a fresh environment name
  fleet_spec     a callable: count -> FleetSpec (mode "fleet") for that environment
  lb_spec        a LoadBalancerSpec for that environment
"""

from dataclasses import replace

from mlops_vm.provision import FleetSpec, InstanceStatus, LoadBalancerSpec, Provider


class ProviderContract:
    def test_dry_run_plans_and_creates_nothing(self, provider: Provider, fleet_spec):
        spec: FleetSpec = fleet_spec(2)
        plan = provider.ensure_fleet(spec, dry_run=True)
        assert any(c.action == "create" and c.kind.endswith("instance") for c in plan.changes)
        assert provider.list_instances(spec.env) == []

    def test_fleet_converges_and_second_run_changes_nothing(self, provider, fleet_spec):
        spec = fleet_spec(2)
        first = provider.ensure_fleet(spec)
        assert first.changed
        assert len(first.instances) == 2
        assert all(i.status == InstanceStatus.RUNNING for i in first.instances)
        second = provider.ensure_fleet(spec)
        assert second.changes == []
        assert sorted(i.id for i in second.instances) == sorted(i.id for i in first.instances)

    def test_count_shrinks_and_grows(self, provider, fleet_spec):
        provider.ensure_fleet(fleet_spec(3))
        shrunk = provider.ensure_fleet(fleet_spec(1))
        assert [c.action for c in shrunk.changes if c.kind.endswith("instance")] == [
            "delete",
            "delete",
        ]
        assert len(provider.list_instances(fleet_spec(1).env)) == 1
        grown = provider.ensure_fleet(fleet_spec(3))
        assert len(grown.instances) == 3
        assert provider.ensure_fleet(fleet_spec(3)).changes == []

    def test_load_balancer_is_idempotent(self, provider, fleet_spec, lb_spec: LoadBalancerSpec):
        fleet = provider.ensure_fleet(fleet_spec(2))
        first = provider.ensure_load_balancer(lb_spec, fleet)
        assert first.changed
        assert first.endpoint.startswith("https://")
        again = provider.ensure_load_balancer(lb_spec, provider.ensure_fleet(fleet_spec(2)))
        assert again.changes == []

    def test_destroy_removes_everything_and_twice_is_a_no_op(self, provider, fleet_spec, lb_spec):
        spec = fleet_spec(2)
        provider.ensure_load_balancer(lb_spec, provider.ensure_fleet(spec))
        removed = provider.destroy(spec.env)
        assert removed
        assert provider.list_instances(spec.env) == []
        assert provider.destroy(spec.env) == []

    def test_release_takes_one_target_out_and_back(self, provider, fleet_spec, lb_spec):
        """deregister drains one target (the others keep serving), register brings it back;
        both are no-ops the second time."""
        spec = replace(lb_spec, drain_seconds=1)
        fleet = provider.ensure_fleet(fleet_spec(2))
        provider.ensure_load_balancer(spec, fleet)
        provider.wait_healthy(spec, expected=2, timeout_s=30, poll_s=0.1)
        leaving, staying = fleet.instances

        planned = provider.deregister_target(spec, leaving, dry_run=True)
        assert [(c.action, c.kind) for c in planned] == [("delete", "target")]
        assert registered_healthy(provider, spec) == {leaving.id, staying.id}

        done = provider.deregister_target(spec, leaving)
        assert [(c.action, c.kind, c.name) for c in done] == [("delete", "target", leaving.id)]
        assert registered_healthy(provider, spec) == {staying.id}
        assert provider.deregister_target(spec, leaving) == []

        back = provider.register_target(spec, leaving)
        assert [(c.action, c.kind, c.name) for c in back] == [("create", "target", leaving.id)]
        healthy = provider.wait_target_healthy(spec, leaving.id, timeout_s=30, poll_s=0.1)
        assert healthy.healthy
        assert registered_healthy(provider, spec) == {leaving.id, staying.id}
        assert provider.register_target(spec, leaving) == []
        # The LB step sees the fleet registered as it wants it: nothing to converge.
        assert (
            provider.ensure_load_balancer(spec, provider.ensure_fleet(fleet_spec(2))).changes == []
        )

    def test_scale_in_drains_the_surplus_before_it_goes(self, provider, fleet_spec, lb_spec):
        """A smaller fleet.count: the surplus instance leaves the load balancer and drains
        while it still runs, then it is terminated; the others keep serving; a second run
        changes nothing (issue 26)."""
        spec = replace(lb_spec, drain_seconds=1)
        fleet = provider.ensure_fleet(fleet_spec(3))
        provider.ensure_load_balancer(spec, fleet)
        provider.wait_healthy(spec, expected=3, timeout_s=30, poll_s=0.1)
        [leaving] = provider.surplus_instances(fleet_spec(2))
        staying = {i.id for i in fleet.instances} - {leaving.id}

        plan = provider.converge_fleet(fleet_spec(2), spec, dry_run=True)
        assert ("delete", "target", leaving.id) in [
            (c.action, c.kind, c.name) for c in plan.changes
        ]
        assert registered_healthy(provider, spec) == {leaving.id, *staying}

        # What the load balancer and the cloud say the moment each drain returns.
        seen: list[tuple[str, bool, set[str]]] = []
        deregister = provider.deregister_target

        def watched(lb, instance, *, dry_run=False):
            changes = deregister(lb, instance, dry_run=dry_run)
            alive = instance.id in {i.id for i in provider.list_instances(lb.env)}
            seen.append((instance.id, alive, registered_healthy(provider, lb)))
            return changes

        provider.deregister_target = watched
        try:
            result = provider.converge_fleet(fleet_spec(2), spec)
        finally:
            del provider.deregister_target
        # Drained while it still ran, the others serving; terminated only after that.
        assert seen == [(leaving.id, True, staying)]
        assert {i.id for i in result.instances} == staying
        assert {i.id for i in provider.list_instances(spec.env)} == staying
        done = [(c.action, c.kind) for c in result.changes]
        assert done.index(("delete", "target")) < max(
            n for n, (action, kind) in enumerate(done) if action == "delete" and "instance" in kind
        )
        lb = provider.ensure_load_balancer(spec, result)
        assert lb.changes == []
        provider.wait_healthy(spec, expected=2, timeout_s=30, poll_s=0.1)
        assert registered_healthy(provider, spec) == staying
        assert provider.converge_fleet(fleet_spec(2), spec).changes == []


def registered_healthy(provider: Provider, spec: LoadBalancerSpec) -> set[str]:
    """Instance ids the LB reports healthy (a draining or removed target is not)."""
    return {target.instance_id for target in provider.target_health(spec) if target.healthy}
