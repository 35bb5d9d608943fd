"""Which release a managed service runs: the rules of mlops_vm/release/choose.py (the same
as on VMs), with the records read from the platform's revisions instead of release.json.

The service counts as one "host": its active revision is the current record and the
revision before it the previous one (Revision.as_release_record).
"""

from typing import Any

from mlops_vm.release.choose import Choice, choose_release
from mlops_vm.services.base import ServiceRecord


def service_records(record: ServiceRecord | None) -> dict[str, dict[str, Any] | None]:
    """RECORD as choose_release's per-host records ({} when there is no service yet)."""
    if record is None or record.active is None:
        return {}
    return {
        record.name: {
            "current": record.active.as_release_record(),
            "previous": record.previous.as_release_record() if record.previous else None,
        }
    }


def choose_service_release(
    mode: str, model: dict[str, Any], record: ServiceRecord | None, image: str = ""
) -> Choice:
    """The release to run. MODE: provision, deploy or rollback; MODEL: the inventory's
    `mlops_vm.model`; RECORD: the service as it is (None: not deployed); IMAGE: --image.
    ReleaseError when there is nothing to roll back to."""
    return choose_release(mode, model, service_records(record), image)
