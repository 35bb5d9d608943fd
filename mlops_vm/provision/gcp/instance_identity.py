"""The identity scaling-group instances boot with: a service account per environment,
attached to the instance template, granted exactly what a boot needs and nothing else:

- roles/storage.objectViewer on the environment's payload bucket only (bucket policy),
  unless the instances boot from a baked image (no payload to read);
- roles/secretmanager.secretAccessor on each named secret only (secret-level policy);
- roles/artifactregistry.reader on the model's repository only (repository policy), when
  the model is in Artifact Registry: the instances log in with their own access token
  (`oauth2accesstoken`), no registry password anywhere.

No project-level role is granted. Each grant is a read-modify-write of the resource's IAM
policy (its etag guards a concurrent change); the grants made are recorded in the payload
bucket, so a secret no longer named loses its grant and destroy takes them all back.
"""

from dataclasses import dataclass
from typing import Any

from mlops_vm.bootstrap.boot_source import BootPlan
from mlops_vm.plan import ChangeLog
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.gcp import boot_payload, secret_refs
from mlops_vm.provision.gcp.boot_apis import BootApis
from mlops_vm.provision.gcp.client import ComputeClient
from mlops_vm.provision.gcp.names import description, digest, owned_by
from mlops_vm.provision.gcp_refs import ARTIFACT_REGISTRY, is_artifact_registry

ACCOUNT_ID_LENGTH = 30
# A new service account takes a few seconds to be known to IAM policies ("does not exist").
PROPAGATION_ATTEMPTS = 8
ROLES = {
    "bucket": "roles/storage.objectViewer",
    "secret": "roles/secretmanager.secretAccessor",
    "repository": "roles/artifactregistry.reader",
}


def repository_name(registry_host: str, repository: str) -> str:
    """`projects/P/locations/L/repositories/R` of an image path P/R/IMAGE on L-docker.pkg.dev."""
    match = ARTIFACT_REGISTRY.match(registry_host)
    assert match is not None, registry_host
    project, repo = repository.split("/")[:2]
    return f"projects/{project}/locations/{match['location']}/repositories/{repo}"


def account_id(env: str, role: str) -> str:
    """6 to 30 characters, [a-z][-a-z0-9]*[a-z0-9]: a hash keeps a long one unique."""
    name = f"mlops-vm-{env}-{role}"
    if len(name) > ACCOUNT_ID_LENGTH:
        name = f"{name[: ACCOUNT_ID_LENGTH - 11].rstrip('-')}-{digest(name)}"
    return name


def account_email(project: str, env: str, role: str) -> str:
    return f"{account_id(env, role)}@{project}.iam.gserviceaccount.com"


@dataclass(frozen=True)
class Grant:
    """ROLE on one resource (KIND: bucket, secret or repository) for the service account."""

    kind: str
    resource: str

    @property
    def role(self) -> str:
        return ROLES[self.kind]

    def label(self) -> str:
        return f"{self.role} on {self.resource}"

    def as_list(self) -> list[str]:
        return [self.kind, self.resource]


def repository_of(plan: BootPlan) -> str | None:
    """The Artifact Registry repository PLAN's instances pull from by identity, if any."""
    if plan.registry_host and plan.repository and is_artifact_registry(plan.registry_host):
        return repository_name(plan.registry_host, plan.repository)
    return None


def wanted_grants(plan: BootPlan, bucket: str) -> list[Grant]:
    # A baked image's plan has no payload: its instances read only the secrets (and pull).
    grants = [] if plan.baked else [Grant("bucket", bucket)]
    grants += [
        Grant("secret", secret)
        for secret in sorted({secret_refs.secret_of(ref) for ref in plan.secret_references()})
    ]
    repository = repository_of(plan)
    if repository:
        grants.append(Grant("repository", repository))
    return grants


# -- IAM policies of the three kinds of resource ------------------------------------------


def policy_client(apis: BootApis, kind: str) -> ComputeClient:
    return {"bucket": apis.storage, "secret": apis.secrets, "repository": apis.registry}[kind]


def get_policy_request(grant: Grant) -> Any:
    if grant.kind == "bucket":
        return lambda s: s.buckets().getIamPolicy(bucket=grant.resource)
    if grant.kind == "secret":
        return lambda s: s.projects().secrets().getIamPolicy(resource=grant.resource)
    return lambda s: s.projects().locations().repositories().getIamPolicy(resource=grant.resource)


def set_policy_request(grant: Grant, policy: dict[str, Any]) -> Any:
    if grant.kind == "bucket":
        return lambda s: s.buckets().setIamPolicy(bucket=grant.resource, body=policy)
    body = {"policy": policy}
    if grant.kind == "secret":
        return lambda s: s.projects().secrets().setIamPolicy(resource=grant.resource, body=body)
    return lambda s: (
        s.projects().locations().repositories().setIamPolicy(resource=grant.resource, body=body)
    )


def read_policy(apis: BootApis, grant: Grant) -> dict[str, Any] | None:
    """The resource's policy; None when the resource does not exist (yet, in a dry run)."""
    return policy_client(apis, grant.kind).get(
        f"read the IAM policy of {grant.resource}", get_policy_request(grant)
    )


def holds(policy: dict[str, Any] | None, grant: Grant, member: str) -> bool:
    return any(
        binding.get("role") == grant.role and member in binding.get("members", [])
        for binding in (policy or {}).get("bindings", [])
    )


def with_member(policy: dict[str, Any], grant: Grant, member: str, present: bool) -> dict:
    """POLICY with MEMBER added to (PRESENT) or taken out of GRANT's role binding."""
    bindings = []
    found = False
    for binding in policy.get("bindings", []):
        members = [m for m in binding.get("members", []) if m != member]
        if binding.get("role") == grant.role and not binding.get("condition"):
            found = True
            if present:
                members.append(member)
        if members:
            bindings.append({**binding, "members": members})
    if present and not found:
        bindings.append({"role": grant.role, "members": [member]})
    return {**policy, "bindings": bindings}


def change_member(apis: BootApis, grant: Grant, member: str, present: bool) -> None:
    """Read-modify-write of the policy (its etag makes a concurrent change fail, not vanish),
    retried while IAM does not know a service account created moments ago."""
    for attempt in range(PROPAGATION_ATTEMPTS):
        policy = read_policy(apis, grant)
        if policy is None:
            if not present:
                return  # the resource is gone: so is its policy
            raise ProvisionError(
                ErrorCode.NOT_FOUND,
                f"{grant.resource} does not exist: cannot grant {grant.role} on it",
                hint="create it first, or fix the reference",
                provider="gcp",
                operation=f"grant {grant.role}",
            )
        try:
            policy_client(apis, grant.kind).execute(
                f"set the IAM policy of {grant.resource}",
                set_policy_request(grant, with_member(policy, grant, member, present)),
            )
            return
        except ProvisionError as error:
            unknown = error.code is ErrorCode.INVALID_INPUT and "does not exist" in str(error)
            if not (present and unknown) or attempt == PROPAGATION_ATTEMPTS - 1:
                raise
            apis.sleep(min(apis.options.poll_interval_s * 2**attempt, 10.0))


# -- the service account and its grants ---------------------------------------------------


def account_name(project: str, email: str) -> str:
    return f"projects/{project}/serviceAccounts/{email}"


def find_account(apis: BootApis, email: str) -> dict[str, Any] | None:
    name = account_name(apis.project, email)
    return apis.iam.get(
        f"read the service account {email}",
        lambda s: s.projects().serviceAccounts().get(name=name),
    )


def create_account(apis: BootApis, env: str, role: str) -> None:
    body = {
        "accountId": account_id(env, role),
        "serviceAccount": {
            "displayName": f"mlops-vm {env} {role} instances",
            "description": description(env, role),
        },
    }
    apis.iam.execute(
        f"create the service account {account_id(env, role)}",
        lambda s: s.projects().serviceAccounts().create(name=f"projects/{apis.project}", body=body),
    )


def ensure_identity(
    apis: BootApis, env: str, role: str, plan: BootPlan, bucket: str, log: ChangeLog
) -> str:
    """The instances' service account (its email, known before it exists), with exactly
    the grants PLAN needs."""
    email = account_email(apis.project, env, role)
    member = f"serviceAccount:{email}"
    if find_account(apis, email) is None:
        log.create(
            "service_account",
            email,
            lambda: create_account(apis, env, role),
            "the scaling group's instances",
        )
    wanted = wanted_grants(plan, bucket)
    for grant in wanted:
        if not holds(read_policy(apis, grant), grant, member):
            log.create(
                "iam_binding",
                grant.label(),
                lambda g=grant: change_member(apis, g, member, present=True),
                email,
            )
    recorded = [Grant(*item) for item in boot_payload.read_grants(apis, bucket)]
    for grant in recorded:
        if grant not in wanted:
            log.delete(
                "iam_binding",
                grant.label(),
                lambda g=grant: change_member(apis, g, member, present=False),
                f"{email}: no longer needed",
            )
    if recorded != wanted:
        record = [grant.as_list() for grant in wanted]
        log.update(
            "grant_record",
            f"gs://{bucket}/{boot_payload.GRANTS_OBJECT}",
            lambda: boot_payload.write_grants(apis, bucket, record),
            "what destroy takes back",
        )
    return email


def delete_identity(apis: BootApis, env: str, role: str, bucket: str, log: ChangeLog) -> None:
    """The grants recorded in BUCKET taken back, then the service account, when ENV's."""
    email = account_email(apis.project, env, role)
    account = find_account(apis, email)
    if not owned_by(account, env, role):
        return
    member = f"serviceAccount:{email}"
    for grant in (Grant(*item) for item in boot_payload.read_grants(apis, bucket)):
        if holds(read_policy(apis, grant), grant, member):
            log.delete(
                "iam_binding",
                grant.label(),
                lambda g=grant: change_member(apis, g, member, present=False),
                email,
            )
    name = account_name(apis.project, email)
    log.delete(
        "service_account",
        email,
        lambda: apis.iam.get(
            f"delete the service account {email}",
            lambda s: s.projects().serviceAccounts().delete(name=name),
        ),
    )
