"""The boot payload of scaling-group instances in S3: the roles, playbook and variables
(nothing secret) that the instances fetch at boot with their instance profile, instead of
carrying them in user-data (EC2's 16 KB).

One bucket per environment (private, encrypted, tagged), one object per payload under a
content-addressed key (boot/<sha256>.xz): a new payload is a new object, so an older
launch template version (a rollback) still finds its own; an unchanged one uploads nothing.
"""

from typing import Any

from mlops_vm.bootstrap.boot_source import BootPlan
from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws import names
from mlops_vm.provision.aws.client import AwsContext


def account_id(ctx: AwsContext) -> str:
    return ctx.call("sts", "get_caller_identity", "read the account id")["Account"]


def bucket_name(ctx: AwsContext, env: str) -> str:
    """The boot_bucket option, or mlops-vm-<env>-boot-<account> (bucket names are global)."""
    return ctx.options.boot_bucket or f"mlops-vm-{env}-boot-{account_id(ctx)}"


def bucket_exists(ctx: AwsContext, bucket: str) -> bool:
    return (
        ctx.call("s3", "head_bucket", f"find the bucket {bucket}", missing_ok=True, Bucket=bucket)
        != {}
    )


def create_bucket(ctx: AwsContext, bucket: str, env: str, role: str) -> None:
    location: dict[str, Any] = (
        {}
        if ctx.region == "us-east-1"
        else {"CreateBucketConfiguration": {"LocationConstraint": ctx.region}}
    )
    ctx.call("s3", "create_bucket", f"create the bucket {bucket}", Bucket=bucket, **location)
    ctx.call(
        "s3",
        "put_public_access_block",
        f"keep the bucket {bucket} private",
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    ctx.call(
        "s3",
        "put_bucket_tagging",
        f"tag the bucket {bucket}",
        Bucket=bucket,
        Tagging={"TagSet": names.tag_list(names.tag_dict(env, role, bucket))},
    )


def ensure_payload(ctx: AwsContext, env: str, role: str, plan: BootPlan, log: ChangeLog) -> str:
    """The payload's s3:// URL, the bucket and the object made when missing."""
    bucket = bucket_name(ctx, env)
    if not bucket_exists(ctx, bucket):
        log.create(
            "s3_bucket", bucket, lambda: create_bucket(ctx, bucket, env, role), "boot payloads"
        )
    key = plan.payload_key()
    present = bucket_exists(ctx, bucket) and ctx.call(
        "s3", "head_object", f"find the boot payload {key}", missing_ok=True, Bucket=bucket, Key=key
    )
    if not present:
        log.create(
            "boot_payload",
            f"s3://{bucket}/{key}",
            lambda: ctx.call(
                "s3",
                "put_object",
                f"upload the boot payload {key}",
                Bucket=bucket,
                Key=key,
                Body=plan.payload,
                ServerSideEncryption="AES256",
            ),
            f"{len(plan.payload)} bytes",
        )
    return f"s3://{bucket}/{key}"


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def delete_bucket(ctx: AwsContext, env: str, log: ChangeLog) -> None:
    """The environment's payload bucket, its objects first, when it is ENV's (tagged)."""
    bucket = bucket_name(ctx, env)
    if not bucket_exists(ctx, bucket):
        return
    tag_set = ctx.call(
        "s3", "get_bucket_tagging", f"read the tags of {bucket}", missing_ok=True, Bucket=bucket
    ).get("TagSet")
    if names.as_dict(tag_set).get(names.TAG_ENV) != env:
        return

    def delete() -> None:
        for item in ctx.pages("s3", "list_objects_v2", "Contents", f"list {bucket}", Bucket=bucket):
            ctx.delete(
                "s3", "delete_object", f"delete {item['Key']}", Bucket=bucket, Key=item["Key"]
            )
        ctx.delete("s3", "delete_bucket", f"delete the bucket {bucket}", Bucket=bucket)

    log.delete("s3_bucket", bucket, delete, "boot payloads")
