"""What the AWS managed targets (ECS, Lambda) share: the AWS context of the VM provider,
and one plan log (mlops_vm/plan.py) per run that every step records into, so that a dry
run (`--check`) lists exactly what the real run then does."""

from abc import abstractmethod
from typing import Generic, TypeVar

from pydantic import BaseModel

from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.errors import reporting_changes
from mlops_vm.provision.model import ProviderSettings
from mlops_vm.services.base import PushResult, ServiceResult, ServiceSpec, ServiceTarget
from mlops_vm.services.settings import parse_options

Options = TypeVar("Options", bound=BaseModel)


class AwsTarget(ServiceTarget, Generic[Options]):
    cloud = "aws"
    options_model: type[Options]  # config.py's model of service.<name>

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self.ctx = AwsContext(settings)

    def _options(self, spec: ServiceSpec) -> Options:
        """The target's own section (service.<name>) as config.py's model validates it."""
        return parse_options(self.options_model, spec.options, f"service.{self.name}", "aws")

    @abstractmethod
    def _push(self, log: ChangeLog, spec: ServiceSpec, options: Options) -> str:
        """push_image's steps; the image as the platform names it."""

    @abstractmethod
    def _converge(self, log: ChangeLog, spec: ServiceSpec) -> None:
        """ensure_service's steps, each recording what it makes into LOG."""

    @abstractmethod
    def _destroy(self, log: ChangeLog, env: str) -> None:
        """destroy's steps, each recording what it deletes into LOG."""

    def push_image(self, spec: ServiceSpec, *, dry_run: bool = False) -> PushResult:
        log = ChangeLog(dry_run=dry_run)
        with reporting_changes(log.changes):
            image = self._push(log, spec, self._options(spec))
        return PushResult(image=image, changes=log.changes)

    def ensure_service(self, spec: ServiceSpec, *, dry_run: bool = False) -> ServiceResult:
        log = ChangeLog(dry_run=dry_run)
        self.notes: list[str] = []  # what a step says beyond its changes (a canary's verdict)
        with reporting_changes(log.changes):
            self._converge(log, spec)
        # A dry run that plans changes has no record yet of the service it would make.
        record = None if dry_run and log.changes else self.status(spec.env)
        return ServiceResult(record=record, changes=log.changes, notes=self.notes)

    def release(self, spec: ServiceSpec, *, dry_run: bool = False) -> ServiceResult:
        """A release converges like `provision`: only what carries the release (a new
        revision or version, the traffic moved to it) changes when it is the only
        difference."""
        return self.ensure_service(spec, dry_run=dry_run)

    def destroy(self, env: str, *, dry_run: bool = False) -> list[Change]:
        log = ChangeLog(dry_run=dry_run)
        with reporting_changes(log.changes):
            self._destroy(log, env)
        return log.changes
