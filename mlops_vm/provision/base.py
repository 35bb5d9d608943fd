"""The provider interface: what every cloud package implements.

Contract for every implementation:
- Idempotent by tags: find what exists (TAG_ENV/TAG_ROLE or LABEL_ENV/LABEL_ROLE) before
  creating anything; a second call with the same spec returns no changes.
- dry_run=True returns the planned changes and changes nothing (this is `--check`).
- `check_offline` checks what needs no credentials nor network (names, sizes, ports);
  `validate` adds what the cloud's API answers (region exists, machine type offered,
  certificate exists); both raise ProvisionError(INVALID_INPUT) before anything is created.
- SDK calls are wrapped once: transient errors retried with backoff (retry.with_backoff),
  others raised as ProvisionError with a classified code and a hint.
- Not-found on delete is success; `destroy` twice is a no-op the second time.
"""

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import TypeVar

from mlops_vm.bootstrap.baked import render_baked_user_data
from mlops_vm.bootstrap.boot_source import BootSource, render_fetch_user_data
from mlops_vm.metrics import Figures
from mlops_vm.plan import Change, ChangeLog, changes_of
from mlops_vm.provision import model
from mlops_vm.provision.errors import ErrorCode, ProvisionError, reporting_changes

T = TypeVar("T")


class Provider(ABC):
    name: str = ""
    # How often a release asks the LB whether a rejoined target is healthy: a cloud API's
    # rate limits and health checks of seconds make a finer poll pointless there.
    target_poll_s: float = 2.0

    def __init__(self, settings: model.ProviderSettings) -> None:
        self.settings = settings

    def error(
        self, code: ErrorCode, message: str, hint: str, operation: str = ""
    ) -> ProvisionError:
        """A ProvisionError of this provider (its name is the error's provider)."""
        return ProvisionError(code, message, hint=hint, provider=self.name, operation=operation)

    def reporting(self, changes: list[Change]) -> AbstractContextManager[None]:
        """How a ProvisionError raised in an operation carries CHANGES, what it made before."""
        return reporting_changes(changes)

    @contextmanager
    def change_log(self, *, dry_run: bool) -> Iterator[ChangeLog]:
        """One operation's change log: a failure part-way still reports what the steps
        before it made (or planned)."""
        log = ChangeLog(dry_run=dry_run)
        with self.reporting(log.changes):
            yield log

    @abstractmethod
    def check_offline(self, fleet: model.FleetSpec, lb: model.LoadBalancerSpec | None) -> None:
        """Raise ProvisionError(INVALID_INPUT) for input the cloud would refuse that can be
        seen without credentials or network (names, sizes, ports, limits): `validate`."""

    @abstractmethod
    def validate(self, fleet: model.FleetSpec, lb: model.LoadBalancerSpec | None) -> None:
        """Raise ProvisionError(INVALID_INPUT) for input the cloud would refuse: the offline
        checks and those that ask the cloud's API (`validate --cloud`, `provision`)."""

    @abstractmethod
    def ensure_fleet(self, spec: model.FleetSpec, *, dry_run: bool = False) -> model.FleetResult:
        """Network, firewall and instances (fleet) or scaling group, converged to SPEC."""

    @abstractmethod
    def list_instances(self, env: str, role: str | None = None) -> list[model.Instance]:
        """The environment's live instances (not terminated), sorted by name."""

    @abstractmethod
    def ensure_load_balancer(
        self, spec: model.LoadBalancerSpec, fleet: model.FleetResult, *, dry_run: bool = False
    ) -> model.LoadBalancerResult:
        """The managed LB in front of FLEET, its targets registered (surplus deregistered)."""

    @abstractmethod
    def target_health(self, spec: model.LoadBalancerSpec) -> list[model.TargetHealth]:
        """The LB's view of each target."""

    @abstractmethod
    def destroy(self, env: str, *, dry_run: bool = False) -> list[Change]:
        """Delete everything tagged with ENV, in dependency order."""

    # -- scaling groups: a machine image per release ------------------------------------------

    def ensure_release_image(
        self, fleet: model.FleetSpec, image: model.ImageSpec, *, dry_run: bool = False
    ) -> tuple[model.ImageResult, list[Change]]:
        """The machine image for IMAGE.release: the one tagged with IMAGE.fingerprint when it
        exists, else baked now (a builder instance in FLEET's network configured by the
        roles, imaged, and removed, also after a failure); this environment's images beyond
        IMAGE.keep_images removed (with their snapshots). Changes as for ensure_fleet.

        The plan records a bake as one change ("create image"): the builder lives only
        inside that call, so `--check` lists exactly what the run leaves behind."""
        raise self.error(
            ErrorCode.INVALID_INPUT,
            f"the {self.name} provider does not bake machine images",
            "use fleet.mode: fleet for this provider",
            "ensure_release_image",
        )

    @staticmethod
    def on_release_image(
        spec: model.FleetSpec,
        bake: Callable[[model.ImageSpec], model.ImageResult],
        release_tags: Callable[[model.ImageSpec], dict[str, str]],
    ) -> model.FleetSpec:
        """SPEC booting from its release's image (BAKE: reused or baked now), its instances
        tagged with RELEASE_TAGS too, so each template (scale set model) says what it runs;
        SPEC as it is when it bakes no image."""
        image = spec.release_image
        if image is None:
            return spec
        tags = {**spec.instance.tags, **release_tags(image)}
        return replace(spec, instance=replace(spec.instance, image=bake(image).image_id, tags=tags))

    def booting_image(self, spec: model.FleetSpec) -> model.ImageSpec | None:
        """The release image SPEC's instances boot from (their boot plan then has no payload:
        nothing to upload), or None for a cold boot. A baked plan without its image is a
        caller's error: the fleet step bakes the image and hands both."""
        plan = spec.instance.boot
        if plan is not None and plan.baked and spec.release_image is None:
            raise self.error(
                ErrorCode.INTERNAL,
                f"{spec.env}: a baked boot plan without its release image",
                "converge the fleet through the fleet step, which bakes the image",
                "boot by identity",
            )
        return spec.release_image

    @staticmethod
    def boot_user_data(image: model.ImageSpec | None, source: BootSource) -> str:
        """The user-data that boots by identity from SOURCE (nothing secret in it): a baked
        image's facts and its boot hook's command, else the fetcher of the payload."""
        if image is None:
            return render_fetch_user_data(source)
        return render_baked_user_data(image.env, image.release, image.fingerprint, source)

    def group_status(self, env: str) -> model.GroupStatus | None:
        """ENV's scaling group: size, instances (release, lifecycle, LB health) and its last
        scaling activities; None when ENV has no scaling group."""
        return None

    def figures(self, env: str, window_s: float) -> dict[str, Figures]:
        """Request figures over the last WINDOW_S from the cloud's metrics service, per load
        balancer backend (a label naming it -> Figures); empty where there is none."""
        return {}

    def previous_release(self, env: str) -> str | None:
        """The release ENV's scaling group ran before its current one (what `rollback`
        releases again); None when it records none or ENV has no scaling group."""
        status = self.group_status(env)
        return status.previous_release if status else None

    # -- releases: one target at a time out of the load balancer and back -------------------

    def deregister_target(
        self, spec: model.LoadBalancerSpec, instance: model.Instance, *, dry_run: bool = False
    ) -> list[Change]:
        """Take INSTANCE out of the load balancer; return once its connections have drained.

        The LB sends it no new request, requests in flight finish (ALB deregistration delay,
        GCP connection draining, Application Gateway connection draining, the local LB's
        drain state), bounded by spec.drain_seconds. Not registered: no change, no wait.
        """
        return changes_of(lambda log: self.deregister_step(spec, instance, log), dry_run=dry_run)

    def register_target(
        self, spec: model.LoadBalancerSpec, instance: model.Instance, *, dry_run: bool = False
    ) -> list[Change]:
        """Put INSTANCE (back) into the load balancer. Does not wait: see wait_target_healthy.
        Already registered: no change."""
        return changes_of(lambda log: self.register_step(spec, instance, log), dry_run=dry_run)

    def deregister_step(
        self, spec: model.LoadBalancerSpec, instance: model.Instance, log: ChangeLog
    ) -> None:
        """deregister_target's work, written to LOG: what a cloud's provider implements."""
        raise NotImplementedError(f"{self.name}: deregister_target")

    def register_step(
        self, spec: model.LoadBalancerSpec, instance: model.Instance, log: ChangeLog
    ) -> None:
        """register_target's work, written to LOG: what a cloud's provider implements."""
        raise NotImplementedError(f"{self.name}: register_target")

    @staticmethod
    def poll(
        read: Callable[[], T], done: Callable[[T], bool], *, timeout_s: float, poll_s: float
    ) -> tuple[bool, T]:
        """READ every POLL_S until DONE(answer); (reached, last answer)."""
        deadline = time.monotonic() + timeout_s
        while True:
            answer = read()
            if done(answer):
                return True, answer
            if time.monotonic() > deadline:
                return False, answer
            time.sleep(poll_s)

    def timeout(self, message: str, operation: str, plural: bool = False) -> ProvisionError:
        instances = "the instances'" if plural else "the instance's"
        hint = f"check {instances} Nginx and model containers (/healthz)"
        return self.error(ErrorCode.TIMEOUT, message, hint, operation)

    def target_reader(
        self, spec: model.LoadBalancerSpec, instance_id: str
    ) -> Callable[[], model.TargetHealth | None]:
        """What wait_target_healthy asks each poll: INSTANCE_ID's health (None: not
        registered). Here the LB's whole view (target_health); a provider that can ask
        about one target alone does so."""

        def read() -> model.TargetHealth | None:
            # A target in more than one backend: healthy once one of them says so.
            mine = [t for t in self.target_health(spec) if t.instance_id == instance_id]
            return next((t for t in mine if t.healthy), mine[0] if mine else None)

        return read

    def wait_target_healthy(
        self,
        spec: model.LoadBalancerSpec,
        instance_id: str,
        *,
        timeout_s: float,
        poll_s: float | None = None,
    ) -> model.TargetHealth:
        """Wait until the LB reports INSTANCE_ID healthy; ProvisionError(TIMEOUT) past the limit.
        POLL_S defaults to the provider's target_poll_s."""
        reached, health = self.poll(
            self.target_reader(spec, instance_id),
            lambda target: target is not None and target.healthy,
            timeout_s=timeout_s,
            poll_s=self.target_poll_s if poll_s is None else poll_s,
        )
        if reached and health is not None:
            return health
        reason = health.reason if health else "not registered with the load balancer"
        raise self.timeout(
            f"{instance_id} not healthy behind the load balancer after "
            f"{timeout_s:.0f}s ({reason or 'unhealthy'})",
            "wait for a healthy target",
        )

    def wait_healthy(
        self,
        spec: model.LoadBalancerSpec,
        *,
        expected: int,
        timeout_s: float = 600.0,
        poll_s: float = 5.0,
    ) -> list[model.TargetHealth]:
        """Wait until EXPECTED targets are healthy; ProvisionError(TIMEOUT) past the limit."""
        reached, health = self.poll(
            lambda: self.target_health(spec),
            lambda h: sum(t.healthy for t in h) >= expected,
            timeout_s=timeout_s,
            poll_s=poll_s,
        )
        if reached:
            return health
        unhealthy = ", ".join(
            f"{t.instance_id} ({t.reason or 'unhealthy'})" for t in health if not t.healthy
        )
        raise self.timeout(
            f"{expected} healthy targets wanted after {timeout_s:.0f}s; "
            f"unhealthy: {unhealthy or 'none registered'}",
            "wait for healthy targets",
            plural=True,
        )

    # -- scaling a fleet in: out of the load balancer before the instances go ---------------

    def surplus_instances(self, spec: model.FleetSpec) -> list[model.Instance]:
        """The fleet instances ensure_fleet(SPEC) removes because fleet.count went down
        (the same ones, in the same order). Providers without a fixed fleet: none."""
        return []

    def drain_surplus(
        self, spec: model.FleetSpec, lb: model.LoadBalancerSpec | None, *, dry_run: bool = False
    ) -> list[Change]:
        """Each instance a smaller fleet.count removes leaves the load balancer and drains
        (deregister_target: no new request, requests in flight finish, bounded by
        lb.drain_seconds), so that none is cut off when the instance goes."""
        if spec.mode != "fleet" or lb is None or lb.target_type != "instance":
            return []
        surplus = self.surplus_instances(spec)
        if not surplus:
            return []
        try:
            behind = {target.instance_id for target in self.target_health(lb)}
        except ProvisionError as error:
            if error.code is not ErrorCode.NOT_FOUND:
                raise
            behind = set()  # no load balancer yet: no request to cut off
        changes: list[Change] = []
        with reporting_changes(changes):
            for instance in surplus:
                if instance.id in behind:
                    changes += self.deregister_target(lb, instance, dry_run=dry_run)
        return changes

    def converge_fleet(
        self, spec: model.FleetSpec, lb: model.LoadBalancerSpec | None, *, dry_run: bool = False
    ) -> model.FleetResult:
        """ensure_fleet, the instances it removes drained from LB's load balancer first."""
        changes = self.drain_surplus(spec, lb, dry_run=dry_run)
        with reporting_changes(changes):
            result = self.ensure_fleet(spec, dry_run=dry_run)
        result.changes[:0] = changes
        return result

    # -- vertical scaling: one instance at a time, out of the load balancer ------------------

    def resize_instance(
        self, spec: model.FleetSpec, instance: model.Instance, *, dry_run: bool = False
    ) -> list[Change]:
        """Give INSTANCE the machine type and disk size of SPEC; no change when it has them.

        The caller has taken it out of the load balancer (releases' drain) and puts it back
        afterwards; this returns once the instance runs again. A resize the instance cannot
        take (another CPU architecture, a driver its image lacks, a smaller disk) raises
        ProvisionError(INVALID_INPUT) before anything changes, dry run or not. Providers
        whose machines have no size of their own (static hosts) change nothing.
        """
        return []

    def plan_resizes(self, spec: model.FleetSpec) -> dict[str, list[Change]]:
        """Each fleet instance's resize, by instance id (only those that need one).

        Every instance is checked before any is touched, so an incompatible machine type
        is refused before anything changes. Scaling groups: {} (their template rolls)."""
        if spec.mode != "fleet":
            return {}
        plan = {}
        for instance in self.list_instances(spec.env, spec.role):
            changes = self.resize_instance(spec, instance, dry_run=True)
            if changes:
                plan[instance.id] = changes
        return plan
