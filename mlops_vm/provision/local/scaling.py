"""The local autoscaler's decision: readings of the group -> the desired instance count.

Target tracking as ASG / MIG / VMSS do it: the capacity that brings the metric back to its
target (requests per second per instance; CPU percent where measured), the larger of the
policies wins, clamped to min / max, and a change only once the cooldown since the last one
has passed (scale-in waits longer: capacity is cheap next to dropped requests). Pure: the
autoscaler (autoscaler.py) feeds it readings and carries the result out.
"""

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    min_size: int
    max_size: int
    target_requests_per_instance: float | None = None  # requests/s each instance should see
    target_cpu_percent: float | None = None
    scale_out_cooldown_s: float = 60.0
    scale_in_cooldown_s: float = 120.0


@dataclass(frozen=True)
class Readings:
    """What the autoscaler saw over its window."""

    in_service: int  # instances serving behind the load balancer
    requests_per_s: float  # through the load balancer's backend, all instances together
    cpu_percent: float | None = None  # mean over the in-service instances; None: not measured


@dataclass(frozen=True)
class Decision:
    desired: int
    reason: str  # the figures and the policy, as the activity history shows them

    def changes(self, current: int) -> bool:
        return self.desired != current


def tracked_capacity(policy: Policy, readings: Readings) -> tuple[int, str]:
    """The capacity each policy asks for; the largest, with the figures that asked."""
    wanted: list[tuple[int, str]] = []
    if policy.target_requests_per_instance:
        need = math.ceil(readings.requests_per_s / policy.target_requests_per_instance - 1e-9)
        wanted.append(
            (
                need,
                f"{readings.requests_per_s:.1f} requests/s for "
                f"{policy.target_requests_per_instance:g} per instance",
            )
        )
    if policy.target_cpu_percent and readings.cpu_percent is not None and readings.in_service:
        busy = readings.in_service * readings.cpu_percent / policy.target_cpu_percent
        wanted.append(
            (
                math.ceil(busy - 1e-9),
                f"CPU {readings.cpu_percent:.0f}% for a target of {policy.target_cpu_percent:g}%",
            )
        )
    if not wanted:
        return readings.in_service, "no policy with a reading"
    return max(wanted, key=lambda item: item[0])


def decide(
    policy: Policy,
    readings: Readings,
    desired: int,
    *,
    since_scale_out_s: float,
    since_scale_in_s: float,
) -> Decision:
    """The new desired count (DESIRED when nothing should change) and why.

    SINCE_*: seconds since the group last scaled out / in (math.inf: never)."""
    clamped = min(max(desired, policy.min_size), policy.max_size)
    if clamped != desired:
        return Decision(clamped, f"size limits min {policy.min_size} / max {policy.max_size}")
    need, figures = tracked_capacity(policy, readings)
    target = min(max(need, policy.min_size), policy.max_size)
    if target > desired:
        if min(since_scale_out_s, since_scale_in_s) < policy.scale_out_cooldown_s:
            return Decision(desired, f"scale-out cooldown ({figures})")
        return Decision(target, f"target tracking: {figures}")
    if target < desired:
        if min(since_scale_out_s, since_scale_in_s) < policy.scale_in_cooldown_s:
            return Decision(desired, f"scale-in cooldown ({figures})")
        return Decision(target, f"target tracking: {figures}")
    return Decision(desired, figures)


class RequestWindow:
    """Requests per second over the last WINDOW_S from the LB's cumulative request count.

    A count that goes down (HAProxy restarted, its counters reset) starts the window anew."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, at: float, total: int) -> None:
        if self.samples and total < self.samples[-1][1]:
            self.samples.clear()
        self.samples.append((at, total))
        while len(self.samples) > 2 and at - self.samples[1][0] >= self.window_s:
            self.samples.popleft()

    def full(self) -> bool:
        """Readings span (most of) the window: enough to act on."""
        return (
            bool(self.samples) and self.samples[-1][0] - self.samples[0][0] >= 0.8 * self.window_s
        )

    def rate(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        (start, first), (end, last) = self.samples[0], self.samples[-1]
        return (last - first) / (end - start) if end > start else 0.0
