"""The deploy lock and the release history in an S3 bucket (`ledger.s3_bucket`): in the
cloud itself, so every operator and CI job sees them before any host exists, and for
managed targets (ECS, Lambda) that have no host.

Why S3 conditional writes: a PUT with `If-None-Match: *` creates the lock object only when
no object has that key, atomically on S3's side (strong read-after-write consistency since
2020, conditional writes since 2024); a loser gets 412 Precondition Failed and reads who
won. A tag has no check-and-set, and a DynamoDB table would be one more resource to own.
History entries are one object each (S3 has no append), named by time so a listing is in
order. Answers have the shape of release/ledger.py's LEDGER program.
"""

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.model import ProviderSettings
from mlops_vm.release.ledger import LedgerError

# What S3 answers when the conditional write lost (412), or raced another one (409).
LOST = ("PreconditionFailed", "ConditionalRequestConflict")


@dataclass
class S3Ledger:
    """The ledger under PREFIX in BUCKET, with the environment's AWS settings."""

    bucket: str
    prefix: str
    settings: ProviderSettings
    _client: Any = field(default=None, repr=False)

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = AwsContext(self.settings).client("s3")
        return self._client

    def call(self, action: str, given: str = "") -> dict[str, Any]:
        try:
            return getattr(self, action)(given)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            raise LedgerError(f"{self.where}: {code or error}") from None

    def holder(self) -> dict[str, Any] | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + "lock.json")
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        try:
            return json.loads(body["Body"].read())
        except ValueError:
            return {"unreadable": True}

    def acquire(self, given: str) -> dict[str, Any]:
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.prefix + "lock.json",
                Body=given.encode(),
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in LOST:
                return {"acquired": False, "holder": self.holder()}
            raise
        return {"acquired": True, "holder": None}

    def read(self, _: str) -> dict[str, Any]:
        return {"holder": self.holder()}

    def release(self, given: str) -> dict[str, Any]:
        """Release the lock of the token GIVEN; or GIVEN is {"token", "append"}: the run's
        history entry is written first (S3 has no transaction across two objects: an
        entry without its release leaves a lock to clear, never a lost entry)."""
        token = given.strip()
        if token.startswith("{"):
            asked = json.loads(token)
            token = asked["token"]
            self.append(json.dumps(asked["append"]))
        current = self.holder()
        if current is None or current.get("token", "") != token:
            return {"released": None, "holder": current}
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + "lock.json")
        return {"released": current}

    def append(self, given: str) -> dict[str, Any]:
        entry = json.loads(given)
        key = f"{self.prefix}history/{entry.get('time', '')}-{uuid.uuid4().hex[:8]}.json"
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=json.dumps(entry).encode(),
            ContentType="application/json",
            IfNoneMatch="*",
        )
        return {}

    def history(self, _: str) -> dict[str, Any]:
        keys: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + "history/"
        )
        for page in pages:
            keys += [item["Key"] for item in page.get("Contents", [])]
        entries = [
            json.loads(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
            for key in sorted(keys)
        ]
        return {"entries": entries}
