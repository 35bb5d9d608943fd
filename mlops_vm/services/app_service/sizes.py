"""What each Linux App Service plan SKU allows: deployment slots, autoscale, instances.

Releases need a `staging` slot and the plan needs autoscale, so Free, Shared and Basic are
refused by validate (Azure would refuse the slot or the autoscale setting only later).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class PlanSku:
    tier: str
    slots: int  # deployment slots besides production
    autoscale: bool
    max_instances: int


PLAN_SKUS: dict[str, PlanSku] = {
    "F1": PlanSku("Free", 0, False, 1),
    "D1": PlanSku("Shared", 0, False, 1),
    **{name: PlanSku("Basic", 0, False, 3) for name in ("B1", "B2", "B3")},
    **{name: PlanSku("Standard", 5, True, 10) for name in ("S1", "S2", "S3")},
    **{name: PlanSku("PremiumV2", 20, True, 30) for name in ("P1v2", "P2v2", "P3v2")},
    **{
        name: PlanSku("PremiumV3", 20, True, 30)
        for name in ("P0v3", "P1v3", "P2v3", "P3v3", "P1mv3", "P2mv3", "P3mv3")
    },
}
