"""The boot payload of scaling-group instances in Cloud Storage: the roles, playbook and
variables (nothing secret) the instances fetch at boot with their service account, instead
of carrying them in the instance template's metadata.

One bucket per environment (uniform bucket-level access, public access prevented,
labelled), one object per payload named by its SHA-256 (boot/<sha256>.xz): a new payload is
a new object, so an older template (a rollback) still finds its own; an unchanged one
uploads nothing. The bucket also keeps the record of the grants made to the instances'
service account (grants.json, resource names only), so destroy can take them back.
"""

import json
from typing import Any

from mlops_vm.bootstrap.boot_source import BootPlan
from mlops_vm.plan import ChangeLog
from mlops_vm.provision.gcp.boot_apis import BootApis
from mlops_vm.provision.gcp.names import digest, labels
from mlops_vm.provision.model import LABEL_ENV

MAX_BUCKET_NAME = 63
GRANTS_OBJECT = "grants.json"


def bucket_name(project: str, env: str, configured: str | None = None) -> str:
    """CONFIGURED (the boot_bucket option), or mlops-vm-<env>-boot-<project> (bucket names
    are global), shortened with a hash past 63 characters."""
    if configured:
        return configured
    name = f"mlops-vm-{env}-boot-{project}"
    if len(name) > MAX_BUCKET_NAME:
        name = f"{name[: MAX_BUCKET_NAME - 11]}-{digest(name)}"
    return name


def find_bucket(apis: BootApis, bucket: str) -> dict[str, Any] | None:
    return apis.storage.get(f"read the bucket {bucket}", lambda s: s.buckets().get(bucket=bucket))


def bucket_body(bucket: str, env: str, role: str, region: str) -> dict[str, Any]:
    return {
        "name": bucket,
        "location": region,
        "labels": labels(env, role),
        "iamConfiguration": {
            "uniformBucketLevelAccess": {"enabled": True},
            "publicAccessPrevention": "enforced",
        },
    }


def object_exists(apis: BootApis, bucket: str, name: str) -> bool:
    found = apis.storage.get(
        f"find {name} in {bucket}", lambda s: s.objects().get(bucket=bucket, object=name)
    )
    return found is not None


def put_object(apis: BootApis, bucket: str, name: str, blob: bytes) -> None:
    apis.storage.execute(f"upload {name} to {bucket}", lambda s: apis.upload(s, bucket, name, blob))


def ensure_bucket(
    apis: BootApis, env: str, role: str, region: str, bucket: str, log: ChangeLog
) -> bool:
    """The environment's bucket, made when missing (a baked image's boot has no payload,
    but the grant record lives here too); whether it existed already."""
    exists = find_bucket(apis, bucket) is not None
    if not exists:
        body = bucket_body(bucket, env, role, region)
        log.create(
            "gcs_bucket",
            bucket,
            lambda: apis.storage.execute(
                f"create the bucket {bucket}",
                lambda s: s.buckets().insert(project=apis.project, body=body),
            ),
            "boot payloads",
        )
    return exists


def ensure_payload(
    apis: BootApis, env: str, role: str, region: str, bucket: str, plan: BootPlan, log: ChangeLog
) -> str:
    """The payload's gs:// URL, the bucket and the object made when missing."""
    exists = ensure_bucket(apis, env, role, region, bucket, log)
    key = plan.payload_key()
    if not (exists and object_exists(apis, bucket, key)):
        log.create(
            "boot_payload",
            f"gs://{bucket}/{key}",
            lambda: put_object(apis, bucket, key, plan.payload),
            f"{len(plan.payload)} bytes",
        )
    return f"gs://{bucket}/{key}"


def read_grants(apis: BootApis, bucket: str) -> list[list[str]]:
    """The grants recorded in BUCKET ([] when there is no record, or no bucket)."""
    raw = apis.storage.get(
        f"read the grants recorded in {bucket}",
        lambda s: s.objects().get_media(bucket=bucket, object=GRANTS_OBJECT),
    )
    return [] if raw is None else json.loads(raw)


def write_grants(apis: BootApis, bucket: str, grants: list[list[str]]) -> None:
    put_object(apis, bucket, GRANTS_OBJECT, json.dumps(grants, indent=1).encode())


def object_names(apis: BootApis, bucket: str) -> list[str]:
    """Every object of BUCKET, following nextPageToken."""
    names: list[str] = []
    token: str | None = None
    while True:
        page = apis.storage.execute(
            f"list {bucket}", lambda s, t=token: s.objects().list(bucket=bucket, pageToken=t)
        )
        names += [item["name"] for item in page.get("items", [])]
        token = page.get("nextPageToken")
        if not token:
            return names


def is_environments(bucket: dict[str, Any] | None, env: str) -> bool:
    return bool(bucket) and (bucket or {}).get("labels", {}).get(LABEL_ENV) == env


def delete_bucket(apis: BootApis, bucket: str, env: str, log: ChangeLog) -> None:
    """The environment's payload bucket, its objects first, when it is ENV's (labelled)."""
    if not is_environments(find_bucket(apis, bucket), env):
        return

    def delete() -> None:
        for name in object_names(apis, bucket):
            apis.storage.get(
                f"delete {name}", lambda s, n=name: s.objects().delete(bucket=bucket, object=n)
            )
        apis.storage.get(f"delete the bucket {bucket}", lambda s: s.buckets().delete(bucket=bucket))

    log.delete("gcs_bucket", bucket, delete, "boot payloads")
