"""The canary gate where a managed platform splits the traffic (Lambda alias weights, Cloud
Run traffic steps, App Service slot routing, ECS's weighted target-group pair): the new
release serves its share, the window passes, the platform's metrics service gives both
releases' figures and metrics.judge decides. Each target moves the traffic and reads its
own metrics; the rule and the wording of a failure are here, once.

A window with too few requests on either side (min_requests) says nothing: the release
goes on, as it would without the gate (its health gate has passed), and says so.
"""

import time
from collections.abc import Callable
from dataclasses import replace

from mlops_vm.metrics import Figures, Judgement
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.services.base import ServiceSpec, ServiceTarget
from mlops_vm.services.settings import CanaryConfig

# window_s -> (the old release's figures, the new release's)
Reader = Callable[[float], tuple[Figures, Figures]]


class Judged(Judgement):
    def note(self, what: str) -> str:
        """What the release says about the gate."""
        if self.verdict.promote:
            return f"canary {what} held: {shown(self.canary)} against {shown(self.baseline)}"
        return f"canary {what} not judged: {self.verdict}"


def with_canary(target: ServiceTarget, spec: ServiceSpec, enabled: bool | None) -> ServiceSpec:
    """SPEC with its platform section's canary.enabled overridden for one run (`deploy
    --canary/--no-canary`); None: as the environment says. A target without a canary gate
    refuses --canary (--no-canary changes nothing there)."""
    if enabled is None or not (enabled or target.has_canary):
        return spec
    if not target.has_canary:
        raise ProvisionError(
            ErrorCode.INVALID_INPUT,
            f"--canary: the {target.name} target has no canary gate",
            hint="deploy without --canary (canaries: ecs, lambda, cloud_run, app_service, VMs)",
            provider=target.cloud,
            operation="canary",
        )
    section = dict(spec.options)
    section["canary"] = {**(section.get("canary") or {}), "enabled": enabled}
    return replace(spec, options=section)


def observe(
    config: CanaryConfig, read: Reader, *, sleep: Callable[[float], None] = time.sleep
) -> Judged:
    """The canary's window waited out, then both releases' figures judged."""
    sleep(config.window_s)
    baseline, canary = read(config.window_s)
    return Judged.of(baseline=baseline, canary=canary, thresholds=config.thresholds())


def shown(figures: Figures) -> str:
    """A window's figures in a line: requests, 5xx share, latency."""
    latency = (
        f"p99 {figures.p99_ms:.0f} ms"
        if figures.p99_ms is not None
        else f"mean {figures.mean_ms:.0f} ms"
        if figures.mean_ms is not None
        else "no latency"
    )
    return f"{figures.requests:.0f} requests, {figures.error_share:.1%} 5xx, {latency}"


def rolled_back(what: str, judged: Judged, provider: str, where: str) -> ProvisionError:
    """The failure of a canary whose traffic went back to the old release (WHERE says to
    what): exit 1, naming the figures."""
    return ProvisionError(
        ErrorCode.CANARY,
        f"canary {what} rolled back: {judged.verdict} (new: {shown(judged.canary)}; old: "
        f"{shown(judged.baseline)}); traffic is back on {where}",
        hint="the new release serves worse than the old one: see `mlops-vm logs ENV`; "
        "the thresholds are the target's canary settings",
        provider=provider,
        operation="canary",
    )
