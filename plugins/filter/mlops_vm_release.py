"""Filters of a release: the release a run rolls out (see mlops_vm/release/choose.py), what
each host runs before and after it, for the history (mlops_vm/release/running.py), and the
canary decision (mlops_vm/release/canary.py)."""

import json
from dataclasses import asdict

from ansible.errors import AnsibleFilterError

from mlops_vm.environment.config import CanaryConfig
from mlops_vm.release.canary import decide
from mlops_vm.release.choose import ReleaseError, choose_release, inventory_release
from mlops_vm.release.running import releases_after, releases_before


def mlops_vm_choose_release(
    records: dict, mode: str, model: dict, image: str = "", to: dict | None = None
) -> dict:
    """{'release': {...}, 'source': ..., 'notes': [...]} for the records of the hosts."""
    # Plain data in: Ansible hands over lazy containers, which dataclasses.asdict cannot copy.
    records, model = json.loads(json.dumps(records)), json.loads(json.dumps(model))
    to = json.loads(json.dumps(to)) if to else None
    try:
        return asdict(choose_release(mode, model, records, image, to))
    except ReleaseError as error:
        raise AnsibleFilterError(str(error)) from None


def plain(data):
    """Plain data from Ansible's lazy containers."""
    return json.loads(json.dumps(data))


def mlops_vm_releases_before(records: dict) -> dict:
    """Each host's release (image and sizes, no `env`) from its release record."""
    return releases_before(plain(records))


def mlops_vm_releases_after(records: dict, changed: list, chosen: dict) -> dict:
    """Each host's release after the run: the CHANGED hosts run CHOSEN, the others what
    their records say."""
    return releases_after(plain(records), plain(changed), plain(chosen or {}))


def canary_settings(settings: dict | None) -> CanaryConfig:
    try:
        return CanaryConfig.model_validate(json.loads(json.dumps(settings or {})))
    except ValueError as error:
        raise AnsibleFilterError(f"release.canary: {error}") from None


def mlops_vm_canary_settings(settings: dict | None) -> dict:
    """The environment's release.canary settings with their defaults filled in."""
    return canary_settings(settings).model_dump()


def mlops_vm_canary_decision(
    start: dict, end: dict, canary_hosts: list, baseline_hosts: list, settings: dict
) -> dict:
    """The canary decision from the hosts' metrics texts at the window's start and end."""
    thresholds = canary_settings(settings).thresholds()
    decision = decide(
        dict(start),
        dict(end),
        canary_hosts=list(canary_hosts),
        baseline_hosts=list(baseline_hosts),
        thresholds=thresholds,
    )
    return decision.as_json()


class FilterModule:
    def filters(self) -> dict:
        return {
            "mlops_vm_choose_release": mlops_vm_choose_release,
            "mlops_vm_canary_decision": mlops_vm_canary_decision,
            "mlops_vm_canary_settings": mlops_vm_canary_settings,
            "mlops_vm_inventory_release": inventory_release,
            "mlops_vm_releases_before": mlops_vm_releases_before,
            "mlops_vm_releases_after": mlops_vm_releases_after,
        }
