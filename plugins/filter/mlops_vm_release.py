"""Filter that chooses the release a run rolls out (see mlops_vm/release/choose.py)."""

import json
from dataclasses import asdict

from ansible.errors import AnsibleFilterError

from mlops_vm.release.choose import ReleaseError, choose_release, inventory_release


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


class FilterModule:
    def filters(self) -> dict:
        return {
            "mlops_vm_choose_release": mlops_vm_choose_release,
            "mlops_vm_inventory_release": inventory_release,
        }
