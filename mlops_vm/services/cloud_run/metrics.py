"""Cloud Run's figures from Cloud Monitoring: request_count by response_code_class and
request_latencies, per revision of the service; and the canary gate on a traffic step."""

from collections.abc import Callable

from mlops_vm.metrics import Figures
from mlops_vm.provision.gcp import metrics
from mlops_vm.provision.gcp.errors import PROVIDER
from mlops_vm.services import canary
from mlops_vm.services.cloud_run.apis import CloudRunApis
from mlops_vm.services.settings import CanaryConfig


def revision_figures(apis: CloudRunApis, service: str, window_s: float) -> dict[str, Figures]:
    """Revision name -> its figures over the window, for the revisions that served any."""
    labels = {"service_name": service, "location": apis.where.region}
    return metrics.figures(apis.monitoring, metrics.CLOUD_RUN, labels, window_s)


def gate(
    apis: CloudRunApis,
    config: CanaryConfig,
    service: str,
    revision: str,
    notes: list[str] | None = None,
) -> Callable[[dict[str, int]], None]:
    """The canary gate on REVISION's first traffic step, judged against the revision that
    had the most traffic before; what it decided goes to NOTES."""

    def judged(before: dict[str, int]) -> None:
        old = max(before, key=lambda rev: before[rev])

        def read(window_s: float) -> tuple[Figures, Figures]:
            found = revision_figures(apis, service, window_s)
            empty = Figures(0, 0, window_s)
            return found.get(old, empty), found.get(revision, empty)

        result = canary.observe(config, read, sleep=apis.monitoring.pause)
        if not result.holds:
            raise canary.rolled_back(f"revision {revision}", result, PROVIDER, f"revision {old}")
        if notes is not None:
            notes.append(result.note(f"revision {revision}"))

    return judged
