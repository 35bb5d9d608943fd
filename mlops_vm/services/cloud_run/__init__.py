"""Google Cloud Run: the model image as a Cloud Run service (run v2 through
google-api-python-client), its image in an Artifact Registry repository of the environment.

What an environment owns (labelled mlops-vm-env): the Artifact Registry Docker repository
(cleanup policy keeps the newest images) and the service (revisions named by a hash of
what runs, traffic, the invoker IAM policy). Secrets stay in Secret Manager: the service
holds references. Settings: service.* and service.cloud_run (config.py); the project is
provider.options.project, the region provider.region. The service URL is the endpoint.

Credentials: Application Default Credentials; tests aim every API at one fake
(ProviderSettings.endpoint_url) and pass credentials in options["credentials"].
"""

from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
import google.oauth2.id_token

from mlops_vm.metrics import Figures
from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision.errors import ErrorCode, ProvisionError, reporting_changes
from mlops_vm.provision.gcp.errors import PROVIDER
from mlops_vm.provision.model import LABEL_ENV, ProviderSettings
from mlops_vm.services.base import (
    PushResult,
    ServiceRecord,
    ServiceResult,
    ServiceSpec,
    ServiceTarget,
)
from mlops_vm.services.cloud_run import (
    access,
    limits,
    load_balancer,
    metrics,
    registry,
    release,
    secrets,
    template,
)
from mlops_vm.services.cloud_run.apis import CloudRunApis
from mlops_vm.services.cloud_run.options import INTERNAL_LB, ingress_of, options_of, region_of
from mlops_vm.services.cloud_run.service import (
    ACTIVE,
    DOMAIN,
    STEPS,
    create_service,
    domain_of,
    find_service,
    get_service,
    list_revisions,
    not_ready,
    patch_service,
    record_of,
    revision_failure,
    services,
    serving,
    short,
)


class CloudRunTarget(ServiceTarget):
    name = "cloud_run"
    has_canary = True
    cloud = "gcp"

    def __init__(self, settings: ProviderSettings, **kwargs: Any) -> None:
        super().__init__(settings)
        self.apis = CloudRunApis(settings, **kwargs)

    # -- checks ------------------------------------------------------------------------------

    def check_offline(self, spec: ServiceSpec) -> None:
        options = options_of(spec)
        limits.check_spec(spec, options, region_of(self.settings))
        limits.check_domain(spec, options)

    def validate(self, spec: ServiceSpec) -> None:
        self.check_offline(spec)
        secrets.check_secrets_exist(self.apis, spec)

    # -- converge ----------------------------------------------------------------------------

    def push_image(self, spec: ServiceSpec, *, dry_run: bool = False) -> PushResult:
        log = ChangeLog(dry_run=dry_run)
        with reporting_changes(log.changes):
            image = self._push(spec, log)
        return PushResult(image=image, changes=log.changes)

    def ensure_service(self, spec: ServiceSpec, *, dry_run: bool = False) -> ServiceResult:
        log = ChangeLog(dry_run=dry_run)
        notes: list[str] = []
        with reporting_changes(log.changes):
            image = self._push(spec, log)
            service = get_service(self.apis, spec.name)
            if service is None:
                self._create(spec, image, log)
            else:
                self._release(spec, service, image, log, notes)
            access.ensure_access(self.apis, self._path(spec.name), spec.access, log)
            self._ensure_endpoint(spec, log, notes, had_domain=domain_of(service) is not None)
        return ServiceResult(record=self._record(spec.name), changes=log.changes, notes=notes)

    def release(self, spec: ServiceSpec, *, dry_run: bool = False) -> ServiceResult:
        if get_service(self.apis, spec.name) is None:
            return self.ensure_service(spec, dry_run=dry_run)
        log = ChangeLog(dry_run=dry_run)
        notes: list[str] = []
        with reporting_changes(log.changes):
            image = self._push(spec, log)
            service = get_service(self.apis, spec.name)
            assert service is not None
            self._release(spec, service, image, log, notes)
        return ServiceResult(record=self._record(spec.name), changes=log.changes, notes=notes)

    def rollback(self, env: str, *, dry_run: bool = False) -> ServiceResult:
        service = find_service(self.apis, env)
        record = record_of(service, list_revisions(self.apis, service)) if service else None
        if service is None or record is None or record.previous is None:
            raise ProvisionError(
                ErrorCode.INVALID_INPUT,
                f"environment {env} has no previous revision to roll back to",
                hint="a rollback needs a release before the one that runs",
                provider=PROVIDER,
                operation="rollback",
            )
        target = record.previous.id
        steps = self._steps(service)
        log = ChangeLog(dry_run=dry_run)
        if serving(service) == {target: 100}:
            return ServiceResult(record=record, changes=log.changes)
        inventory = record.active.inventory_image if record.active else ""

        def move_back() -> ServiceRecord | None:
            release.check_ready(self.apis, service, target)
            release.move_traffic(
                self.apis, service, target, steps, source="rollback", inventory_image=inventory
            )
            return self._record(short(service["name"]))

        record = log.apply(
            "update",
            "cloud_run_traffic",
            short(service["name"]),
            move_back,
            release.traffic_detail(target, steps),
            planned=record,
        )
        return ServiceResult(record=record, changes=log.changes)

    # -- reads -------------------------------------------------------------------------------

    def status(self, env: str) -> ServiceRecord | None:
        service = find_service(self.apis, env)
        return self._with_endpoint(env, service)

    def figures(self, env: str, window_s: float) -> dict[str, Figures]:
        """Per revision that served requests in the window ('revision NAME')."""
        service = find_service(self.apis, env)
        if service is None:
            return {}
        found = metrics.revision_figures(self.apis, short(service["name"]), window_s)
        return {f"revision {name}": figures for name, figures in sorted(found.items())}

    def logs(self, env: str, *, tail: int = 100) -> list[str]:
        service = find_service(self.apis, env)
        if service is None:
            return []
        where = self.apis.where
        query = (
            'resource.type="cloud_run_revision" AND '
            f'resource.labels.service_name="{short(service["name"])}" AND '
            f'resource.labels.location="{where.region}"'
        )
        page = self.apis.logging.execute(
            "read the service's logs",
            lambda s: s.entries().list(
                body={
                    "resourceNames": [f"projects/{where.project}"],
                    "filter": query,
                    "orderBy": "timestamp desc",
                    "pageSize": tail,
                }
            ),
        )
        lines = [entry_text(entry) for entry in page.get("entries", [])]
        return list(reversed(lines))

    def destroy(self, env: str, *, dry_run: bool = False) -> list[Change]:
        log = ChangeLog(dry_run=dry_run)
        with reporting_changes(log.changes):
            service = find_service(self.apis, env)
            if domain_of(service):  # the load balancer first: it points at the service
                load_balancer.destroy(self.apis, env, log)
            if service is not None:
                path = service["name"]

                def delete_service() -> None:
                    operation = self.apis.run.execute(
                        "delete the service", lambda s: services(s).delete(name=path)
                    )
                    self.apis.run_operation("delete the service", operation)

                log.delete("cloud_run_service", short(path), delete_service)
            for repository in registry.find_repositories(self.apis, env):
                name = repository["name"]
                log.delete(
                    "artifact_registry_repository",
                    short(name),
                    lambda n=name: registry.delete_repository(self.apis, n),
                )
        return log.changes

    # -- steps -------------------------------------------------------------------------------

    def _path(self, name: str) -> str:
        return f"{self.apis.where.parent}/services/{name}"

    def _record(self, name: str) -> ServiceRecord | None:
        service = get_service(self.apis, name)
        env = (service or {}).get("labels", {}).get(LABEL_ENV, "")
        return self._with_endpoint(env, service)

    def _with_endpoint(self, env: str, service: dict[str, Any] | None) -> ServiceRecord | None:
        """The service's record; behind the load balancer, its endpoint is the custom
        domain, and the platform's URL and the DNS record to create are in resources."""
        if service is None:
            return None
        record = record_of(service, list_revisions(self.apis, service))
        domain = domain_of(service)
        if domain:
            address = load_balancer.address_of(self.apis, env) or ""
            record.resources["platform_url"] = record.url
            record.resources["dns_record"] = {"name": domain, "type": "A", "value": address}
            record.url = f"https://{domain}"
        return record

    def _ensure_endpoint(
        self, spec: ServiceSpec, log: ChangeLog, notes: list[str], *, had_domain: bool
    ) -> None:
        """The load balancer on service.domain, or none (the one of a domain since removed
        is deleted)."""
        if not spec.domain:
            if had_domain:
                load_balancer.destroy(self.apis, spec.env, log)
            return
        address = load_balancer.ensure(self.apis, spec, log)
        notes.append(
            f"DNS: create {load_balancer.dns_record(spec.domain, address)} at your DNS "
            "provider (a managed certificate is issued once it resolves)"
        )

    def _steps(self, service: dict[str, Any]) -> tuple[int, ...]:
        steps = service.get("annotations", {}).get(STEPS, "100")
        return tuple(int(step) for step in steps.split(","))

    def _template(self, spec: ServiceSpec, image: str) -> dict[str, Any]:
        options = options_of(spec)
        return template.revision_template(spec, options, self.apis.where.project, image)

    def _push(self, spec: ServiceSpec, log: ChangeLog) -> str:
        """The environment's repository, and the image copied into it: its reference."""
        options = options_of(spec)
        registry.ensure_repository(self.apis, spec, options, log)
        return registry.push_image(self.apis, spec, options, log)

    def _create(self, spec: ServiceSpec, image: str, log: ChangeLog) -> None:
        options = options_of(spec)
        body_template = self._template(spec, image)
        revision = body_template["revision"]
        body = {
            "labels": template.labels(spec),
            "annotations": {
                **release.release_annotations(
                    {}, revision, spec.source, spec.inventory_image or spec.image
                ),
                STEPS: ",".join(map(str, options.traffic_steps)),
                **({DOMAIN: spec.domain} if spec.domain else {}),
            },
            "ingress": ingress_of(spec, options),
            "template": body_template,
            "traffic": [{"type": release.REVISION, "revision": revision, "percent": 100}],
        }

        def create() -> None:
            try:
                create_service(self.apis, spec.name, body)
            except ProvisionError as error:
                if error.code in (
                    ErrorCode.INVALID_INPUT,
                    ErrorCode.CONFLICT,
                    ErrorCode.PERMISSION,
                ):
                    raise
                path = f"{self._path(spec.name)}/revisions/{revision}"
                raise not_ready(revision, revision_failure(self.apis, path), {}) from None

        log.create("cloud_run_service", spec.name, create, f"revision {revision}")

    def _release(
        self,
        spec: ServiceSpec,
        service: dict[str, Any],
        image: str,
        log: ChangeLog,
        notes: list[str],
    ) -> None:
        """A new revision (when what runs changed), gated on its readiness, then the
        traffic moved to it step by step."""
        options = options_of(spec)
        service = self._ensure_ingress(spec, service, log)
        wanted = self._template(spec, image)
        revision = wanted["revision"]
        existing = {short(r["name"]) for r in list_revisions(self.apis, service)}
        fresh = revision not in existing
        if not fresh and serving(service) == {revision: 100}:
            return
        if fresh:
            candidate = service
            service = log.create(
                "cloud_run_revision",
                revision,
                lambda: self._deploy_candidate(spec, candidate, wanted, notes),
                f"{spec.image}, no traffic",
                planned=service,
            )

        def move() -> None:
            if not fresh:  # an earlier revision must still be ready (a new one was gated)
                release.check_ready(self.apis, service, revision)
            release.move_traffic(
                self.apis,
                service,
                revision,
                options.traffic_steps,
                source=spec.source,
                inventory_image=spec.inventory_image or spec.image,
                gate=(
                    metrics.gate(self.apis, options.canary, spec.name, revision, notes)
                    if options.canary.enabled
                    else None
                ),
            )

        detail = release.traffic_detail(revision, options.traffic_steps)
        if options.canary.enabled and serving(service):
            detail += f", canary judged over {options.canary.window_s:.0f}s"
        log.update("cloud_run_traffic", spec.name, move, detail)

    def _ensure_ingress(
        self, spec: ServiceSpec, service: dict[str, Any], log: ChangeLog
    ) -> dict[str, Any]:
        """Ingress and the domain annotation as SPEC wants them (service.domain added or
        removed, service.cloud_run.ingress changed); the service as it then is."""
        ingress = ingress_of(spec, options_of(spec))
        annotations = {k: v for k, v in service.get("annotations", {}).items() if k != DOMAIN}
        if spec.domain:
            annotations[DOMAIN] = spec.domain
        if service.get("ingress") == ingress and domain_of(service) == spec.domain:
            return service
        body = {"ingress": ingress, "annotations": annotations}
        patched = log.update(
            "cloud_run_service",
            spec.name,
            lambda: patch_service(self.apis, service, body, "ingress,annotations"),
            f"ingress {ingress}, domain {spec.domain or 'none'}",
        )
        return patched or service

    def _deploy_candidate(
        self, spec: ServiceSpec, service: dict[str, Any], wanted: dict[str, Any], notes: list[str]
    ) -> dict[str, Any]:
        """The new revision with no traffic, ready and (when it can be) answering on its
        tag URL: the service as it then is."""
        token = self._invoker_token(spec, service)
        behind_lb = service.get("ingress") == INTERNAL_LB
        check_url = (spec.access == "public" or token is not None) and not behind_lb
        if not check_url:
            why = (
                "ingress is the load balancer's only"
                if behind_lb
                else "no identity token for an authenticated service here"
            )
            notes.append(
                f"the tag URL was not checked: {why} (Cloud Run's startup probe gated the revision)"
            )
        return release.deploy_candidate(
            self.apis,
            service,
            wanted,
            readiness_path=spec.readiness_path,
            token=token,
            timeout_s=min(spec.healthy_timeout_s, 600),
            check_url=check_url,
        )

    def _invoker_token(self, spec: ServiceSpec, service: dict[str, Any]) -> str | None:
        """An identity token for an authenticated service's tag URL (None: public, or no
        identity that can mint one here: the check then goes without it)."""
        if spec.access == "public" or not service.get("uri"):
            return None
        try:
            return google.oauth2.id_token.fetch_id_token(
                google.auth.transport.requests.Request(), service["uri"]
            )
        except google.auth.exceptions.GoogleAuthError:
            return None


def entry_text(entry: dict[str, Any]) -> str:
    """One log entry as a line: its text, or its JSON payload's message."""
    if "textPayload" in entry:
        return str(entry["textPayload"])
    payload = entry.get("jsonPayload") or {}
    return str(payload.get("message", payload))


__all__ = ["ACTIVE", "CloudRunTarget"]
