"""`status` of a scaling group, rendered once for every provider: the JSON payload, the
text rows and what makes it exit 1 (GroupStatus.problems)."""

import json
from types import SimpleNamespace

from mlops_vm.commands.group_status import group_payload, group_summary
from mlops_vm.provision.model import GroupInstance, GroupStatus, ScalingActivity

V1 = "registry.example:5000/model:v1"
V2 = "registry.example:5000/model:v2"


def loaded(image: str = V2) -> SimpleNamespace:
    return SimpleNamespace(config=SimpleNamespace(env="prod", model=SimpleNamespace(image=image)))


def group(*instances: GroupInstance, desired: int = 2) -> GroupStatus:
    return GroupStatus(
        name="mlops-vm-prod-model",
        min_size=1,
        desired=desired,
        max_size=4,
        release=V2,
        previous_release=V1,
        instances=instances,
        activities=(
            ScalingActivity(
                at="2026-12-05T16:00:00+00:00",
                description="Launching a new EC2 instance: i-2",
                cause="policy mlops-vm-cpu-target changed the desired capacity from 1 to 2",
                status="Successful",
            ),
        ),
    )


def serving(instance_id: str, release: str = V2, healthy: bool | None = True) -> GroupInstance:
    return GroupInstance(instance_id, "eu-west-1a", release, "in_service", healthy, "InService")


def test_the_payload_carries_size_releases_instances_and_activities():
    payload = group_payload(loaded(), group(serving("i-1"), serving("i-2")))
    assert json.loads(json.dumps(payload)) == payload  # --json prints it as is
    assert payload["ok"] is True and payload["problems"] == []
    scaling = payload["scaling_group"]
    assert (scaling["min_size"], scaling["desired"], scaling["max_size"]) == (1, 2, 4)
    assert (scaling["release"], scaling["previous_release"]) == (V2, V1)
    assert [i["id"] for i in payload["instances"]] == ["i-1", "i-2"]
    assert scaling["activities"][0]["cause"].endswith("from 1 to 2")


def test_the_text_rows_show_each_instance_and_the_last_activities():
    rows = dict(group_summary(group_payload(loaded(), group(serving("i-1"), serving("i-2")))))
    assert rows["scaling group"] == "mlops-vm-prod-model: min 1 / desired 2 / max 4"
    assert rows["release"] == f"{V2} (previous: {V1}; inventory: {V2})"
    assert rows["i-1"] == f"eu-west-1a  in_service  {V2}  healthy"
    assert "[Successful] Launching a new EC2 instance: i-2" in rows["activity"]
    assert "from 1 to 2" in rows["activity"]


def test_what_is_wrong_makes_status_fail():
    draining = GroupInstance("i-3", "eu-west-1b", V2, "draining", True, "Standby")
    sick = serving("i-1", healthy=False)
    old = serving("i-2", release=V1)
    payload = group_payload(loaded(), group(sick, old, draining, desired=3))
    assert payload["ok"] is False
    assert payload["problems"] == [
        "2 of 3 desired instances in service",
        "i-1 is unhealthy in the load balancer InService",
        f"i-2 runs {V1}, the group {V2}",
    ]
    rows = dict(group_summary(payload))
    assert rows["i-3"].endswith("healthy") and "draining" in rows["i-3"]
    assert rows["i-1"].endswith("unhealthy InService")
