"""Request figures over a window, and the canary decision that reads them.

The lowest layer (no cloud, no Ansible): every reader of request metrics turns what it
reads into `Figures` (HAProxy's and the model hosts' Prometheus endpoints locally;
CloudWatch, Cloud Monitoring and Azure Monitor on the clouds; each managed platform's own
metrics), and `status`, `top` and the canary gate only ever see `Figures`.

    before = parse_histogram(...)            # cumulative counters at the window's start
    after = parse_histogram(...)             # ... and at its end
    figures = Figures.between(before, after, seconds=60)
    verdict = judge(baseline=old, canary=new, thresholds=CanaryThresholds())
"""

from mlops_vm.metrics.canary import CanaryThresholds, Judgement, Verdict, judge
from mlops_vm.metrics.figures import Counters, Figures, quantile

__all__ = [
    "CanaryThresholds",
    "Counters",
    "Figures",
    "Judgement",
    "Verdict",
    "judge",
    "quantile",
]
