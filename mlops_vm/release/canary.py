"""The canary decision of a VM release (playbooks/release/canary.yml): the first batch's
hosts, on the new release, against the hosts still on the old one, over the same window.

Each side's figures come from its hosts' request metrics (mlops-vm-request-metrics, read at
the window's start and end): every request a side answered in the window, summed over its
hosts, so a host's share of the traffic weighs as it did for the users.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from mlops_vm.metrics import CanaryThresholds, Figures, Judgement
from mlops_vm.metrics.prometheus import HostReading, read_host_metrics, window_figures


class CanaryDecision(Judgement):
    def as_json(self) -> dict[str, Any]:
        return {
            "go_on": self.holds,
            "promote": self.verdict.promote,
            "enough_traffic": self.verdict.enough_traffic,
            "reasons": list(self.verdict.reasons),
            "summary": str(self.verdict),
            "canary": self.canary.as_json(),
            "baseline": self.baseline.as_json(),
        }


def readings_of(texts: Mapping[str, str]) -> dict[str, HostReading]:
    """Each inventory host's reading, from its exporter's answer (the host label is the
    inventory name, but the key here is what the caller asked, whatever the label says)."""
    readings = {}
    for host, text in texts.items():
        parsed = list(read_host_metrics(text).values())
        readings[host] = parsed[0] if parsed else HostReading(host, 0.0)
    return readings


def side(
    start: Mapping[str, HostReading], end: Mapping[str, HostReading], hosts: Sequence[str]
) -> Figures:
    return window_figures((start[h], end[h]) for h in hosts if h in start and h in end)


def decide(
    start: Mapping[str, str],
    end: Mapping[str, str],
    *,
    canary_hosts: Sequence[str],
    baseline_hosts: Sequence[str],
    thresholds: CanaryThresholds,
) -> CanaryDecision:
    """The decision from the hosts' metrics texts at the window's START and END."""
    first, last = readings_of(start), readings_of(end)
    canary = side(first, last, canary_hosts)
    baseline = side(first, last, baseline_hosts)
    return CanaryDecision.of(baseline=baseline, canary=canary, thresholds=thresholds)
