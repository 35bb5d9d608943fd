"""The canary decision: does the new release serve as well as the old one?

One rule for every target (VM batches, Lambda alias weights, Cloud Run traffic steps,
App Service slot routing, ECS): the canary's 5xx share may exceed the baseline's by at
most `max_error_share_increase` (absolute), and its p99 may be at most `max_p99_ratio`
times the baseline's. Below `min_requests` on either side the window says nothing; the
caller waits longer or, at the window's end, decides by its policy (the verdict says so).
Where a source has no percentiles (App Service's average response time), the means compare
with the same ratio.
"""

from dataclasses import dataclass
from typing import Self

from mlops_vm.metrics.figures import Figures


@dataclass(frozen=True)
class CanaryThresholds:
    max_error_share_increase: float = 0.01  # 1 percentage point more 5xx than the baseline
    max_p99_ratio: float = 1.5  # p99 at most 1.5 times the baseline's
    min_requests: int = 50  # fewer requests than this on either side: no judgement


@dataclass(frozen=True)
class Verdict:
    promote: bool
    enough_traffic: bool
    reasons: tuple[str, ...]  # why not, in figures (empty when promoted)

    def __str__(self) -> str:
        if self.promote:
            return "canary holds"
        return "; ".join(self.reasons)


def judge(*, baseline: Figures, canary: Figures, thresholds: CanaryThresholds) -> Verdict:
    """Compare the canary's window against the baseline's."""
    if min(baseline.requests, canary.requests) < thresholds.min_requests:
        return Verdict(
            promote=False,
            enough_traffic=False,
            reasons=(
                f"too few requests to judge: baseline {baseline.requests:.0f}, canary "
                f"{canary.requests:.0f} (min_requests {thresholds.min_requests})",
            ),
        )
    reasons: list[str] = []
    allowed_errors = baseline.error_share + thresholds.max_error_share_increase
    if canary.error_share > allowed_errors:
        reasons.append(
            f"5xx share {canary.error_share:.1%} against {baseline.error_share:.1%} on the "
            f"old release (allowed {allowed_errors:.1%})"
        )
    latency = slower(baseline, canary, thresholds.max_p99_ratio)
    if latency:
        reasons.append(latency)
    return Verdict(promote=not reasons, enough_traffic=True, reasons=tuple(reasons))


@dataclass(frozen=True)
class Judgement:
    """A canary window's two sides and the verdict on them: what a gate acts on."""

    verdict: Verdict
    baseline: Figures
    canary: Figures

    @classmethod
    def of(cls, *, baseline: Figures, canary: Figures, thresholds: CanaryThresholds) -> Self:
        return cls(judge(baseline=baseline, canary=canary, thresholds=thresholds), baseline, canary)

    @property
    def holds(self) -> bool:
        """The release goes on: the canary served as well, or the window was too quiet to
        say (its health gate has passed)."""
        return self.verdict.promote or not self.verdict.enough_traffic


def slower(baseline: Figures, canary: Figures, max_ratio: float) -> str:
    """Why the canary is too slow ('' when it is not): p99 against p99, or, where a source
    gives no percentiles on either side, mean against mean (the same ratio)."""
    for label, old, new in (
        ("p99 latency", baseline.p99_ms, canary.p99_ms),
        ("mean latency", baseline.mean_ms, canary.mean_ms),
    ):
        if old is not None and new is not None:
            allowed = old * max_ratio
            if new <= allowed:
                return ""
            return (
                f"{label} {new:.0f} ms against {old:.0f} ms on the old release "
                f"(allowed {allowed:.0f} ms)"
            )
    return ""
