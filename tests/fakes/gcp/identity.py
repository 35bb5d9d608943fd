"""A fake of what a GCP boot by identity calls besides Compute Engine, each request checked
against the API's discovery document first (rest_discovery.py), served on FakeCompute's
root as the provider aims them (each API under /<api>/):

- IAM v1: service accounts (create, get, delete);
- Cloud Storage JSON API v1: buckets (insert, get, delete, getIamPolicy, setIamPolicy) and
  objects (simple media upload, get with alt=media, list, delete); also under
  /storage/v1/, where an instance's fetcher reads it as on storage.googleapis.com;
- Secret Manager v1: versions get and :access (payload.data base64), secret IAM policies;
- Artifact Registry v1: repository IAM policies.

Who calls is told by the bearer token: none, or one the fake did not issue, is the
operator (allowed everything but what deny_operator names); a token issued for a service
account (issue_token, which the metadata stand-in hands out) may only read a secret it has
roles/secretmanager.secretAccessor on and objects of a bucket it has
roles/storage.objectViewer on, as the real services enforce the policies.
"""

import base64
import copy
import hashlib
import itertools
import json
import re
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from tests.fakes.gcp.errors import ApiError, invalid, not_found
from tests.fakes.gcp.rest_discovery import NestedDiscovery, load_document

ACCOUNT_ID = re.compile(r"^[a-z](?:[-a-z0-9]{4,28}[a-z0-9])$")
SECRET_ACCESSOR = "roles/secretmanager.secretAccessor"
OBJECT_VIEWER = "roles/storage.objectViewer"
# Path prefixes (after the root) -> the API.
PREFIXES = (
    ("upload/storage/v1/", "upload"),
    ("storage/v1/", "storage"),
    ("storage/", "storage"),
    ("iam/", "iam"),
    ("secretmanager/", "secretmanager"),
    ("artifactregistry/", "artifactregistry"),
)


@dataclass
class Reply:
    status: int
    body: Any  # JSON, or bytes (media), or None (204)


def forbidden(what: str) -> ApiError:
    return ApiError(403, "forbidden", f"Permission denied on {what}", status="PERMISSION_DENIED")


def holds(policy: dict[str, Any], role: str, member: str) -> bool:
    return any(
        b.get("role") == role and member in b.get("members", []) for b in policy.get("bindings", [])
    )


@dataclass
class IdentityState:
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)  # email -> account
    # projects/P/secrets/S -> {"policy": ..., "versions": {"1": {"state", "data"}}}
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    # bucket -> {"resource", "policy", "objects": {name: (resource, data)}}
    buckets: dict[str, dict[str, Any]] = field(default_factory=dict)
    repositories: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> policy
    tokens: dict[str, str] = field(default_factory=dict)  # token -> member
    denied: set[str] = field(default_factory=set)  # resources the operator may not read
    # A new account is unknown to the next N policy changes naming it, as IAM propagates.
    propagation_delay: int = 0
    unseen: dict[str, int] = field(default_factory=dict)  # email -> changes still refused
    lock: threading.RLock = field(default_factory=threading.RLock)
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    def etag(self) -> str:
        return base64.b64encode(f"etag-{next(self.counter)}".encode()).decode()


class IdentityApi:
    """Routes a request by the discovery documents, answers from IdentityState."""

    def __init__(self) -> None:
        self.state = IdentityState()
        self.documents: dict[str, NestedDiscovery] = {
            api: load_document(api, "v1")
            for api in ("iam", "storage", "secretmanager", "artifactregistry")
        }
        self.calls: list[tuple[str, str]] = []  # (method id, caller)

    @staticmethod
    def api_of(path: str) -> tuple[str, str] | None:
        """(api, the path under it) of a request path after the root, None if not ours."""
        for prefix, api in PREFIXES:
            if path.startswith(prefix):
                return api, path[len(prefix) :]
        return None

    def serve(
        self, http_method: str, path: str, raw_query: str, raw: bytes, authorization: str
    ) -> Reply:
        api, rest = self.api_of(path) or ("", "")
        query = {k: v for k, v in parse_qsl(raw_query) if k not in ("prettyPrint",)}
        token = authorization.removeprefix("Bearer ").strip()
        try:
            with self.state.lock:
                caller = self.state.tokens.get(token, "operator")
                if api == "upload":
                    return Reply(200, self.upload(rest, query, raw, caller))
                discovery = self.documents[api]
                method, params = discovery.route(http_method, rest)
                params = {k: unquote(v) for k, v in params.items()}
                media = query.pop("alt", "json") == "media"
                discovery.check_parameters(method, params, query)
                body = _json(raw)
                discovery.check_body(method, body)
                self.calls.append((method.id, caller))
                handler = getattr(self, method.id.replace(".", "_"), None)
                if handler is None:
                    raise ApiError(501, "notImplemented", f"{method.id} is not in the fake")
                return handler(params, query, body or {}, caller, media)
        except ApiError as error:
            return Reply(error.code, error.body())

    # -- test hooks ----------------------------------------------------------------------

    def add_secret(self, project: str, secret: str, value: str, state: str = "ENABLED") -> str:
        """A secret with one version holding VALUE; its name."""
        name = f"projects/{project}/secrets/{secret}"
        with self.state.lock:
            entry = self.state.secrets.setdefault(
                name, {"policy": {"version": 1, "etag": self.state.etag()}, "versions": {}}
            )
            version = str(len(entry["versions"]) + 1)
            entry["versions"][version] = {"state": state, "data": value.encode()}
        return name

    def add_repository(self, name: str) -> None:
        with self.state.lock:
            self.state.repositories[name] = {"version": 1, "etag": self.state.etag()}

    def delay_propagation(self, changes: int) -> None:
        """Each account created from now on is unknown to its first CHANGES policy changes."""
        with self.state.lock:
            self.state.propagation_delay = changes

    def deny_operator(self, resource: str) -> None:
        with self.state.lock:
            self.state.denied.add(resource)

    def issue_token(self, email: str) -> str:
        """An access token of the service account EMAIL (what the metadata server hands)."""
        with self.state.lock:
            token = f"ya29.fake-{next(self.state.counter)}"
            self.state.tokens[token] = f"serviceAccount:{email}"
        return token

    def policy(self, kind: str, name: str) -> dict[str, Any]:
        with self.state.lock:
            if kind == "secret":
                return copy.deepcopy(self.state.secrets[name]["policy"])
            if kind == "bucket":
                return copy.deepcopy(self.state.buckets[name]["policy"])
            return copy.deepcopy(self.state.repositories[name])

    def object_data(self, bucket: str, name: str) -> bytes:
        with self.state.lock:
            return self.state.buckets[bucket]["objects"][name][1]

    # -- IAM -----------------------------------------------------------------------------

    def _operator(self, caller: str, what: str) -> None:
        if caller != "operator" or what in self.state.denied:
            raise forbidden(what)

    def iam_projects_serviceAccounts_create(self, params, query, body, caller, media):
        project = params["name"].removeprefix("projects/")
        self._operator(caller, params["name"])
        account_id = body.get("accountId", "")
        if not ACCOUNT_ID.match(account_id):
            raise invalid(f"accountId {account_id!r} does not match [a-z][-a-z0-9]{{4,28}}[a-z0-9]")
        email = f"{account_id}@{project}.iam.gserviceaccount.com"
        if email in self.state.accounts:
            raise ApiError(409, "alreadyExists", f"Service account {account_id} already exists")
        given = body.get("serviceAccount") or {}
        account = {
            "name": f"projects/{project}/serviceAccounts/{email}",
            "projectId": project,
            "uniqueId": str(100000000000000000000 + next(self.state.counter)),
            "email": email,
            "displayName": given.get("displayName", ""),
            "description": given.get("description", ""),
            "etag": self.state.etag(),
            "oauth2ClientId": str(next(self.state.counter)),
        }
        self.state.accounts[email] = account
        self.state.unseen[email] = self.state.propagation_delay
        return Reply(200, copy.deepcopy(account))

    def _account(self, name: str) -> dict[str, Any]:
        email = name.rsplit("/", 1)[-1]
        if email not in self.state.accounts:
            raise not_found(name)
        return self.state.accounts[email]

    def iam_projects_serviceAccounts_get(self, params, query, body, caller, media):
        self._operator(caller, params["name"])
        return Reply(200, copy.deepcopy(self._account(params["name"])))

    def iam_projects_serviceAccounts_delete(self, params, query, body, caller, media):
        self._operator(caller, params["name"])
        account = self._account(params["name"])
        del self.state.accounts[account["email"]]
        for token, member in list(self.state.tokens.items()):
            if member == f"serviceAccount:{account['email']}":
                del self.state.tokens[token]  # its tokens stop working
        return Reply(200, {})

    # -- policies (the shape of google.iam.v1.Policy) -----------------------------------

    def _set_policy(self, stored: dict[str, Any], policy: dict[str, Any]) -> dict[str, Any]:
        if policy.get("etag") and policy["etag"] != stored["etag"]:
            raise ApiError(
                409, "aborted", "There were concurrent policy changes.", status="ABORTED"
            )
        for binding in policy.get("bindings", []):
            if not binding.get("role", "").startswith("roles/") or not binding.get("members"):
                raise invalid(f"invalid binding {binding}")
            for member in binding["members"]:
                self._check_member(member)
        stored.clear()
        stored.update(
            {
                **{k: v for k, v in policy.items() if k not in ("etag", "bindings")},
                "version": policy.get("version", 1),
                "etag": self.state.etag(),
            }
        )
        if policy.get("bindings"):
            stored["bindings"] = copy.deepcopy(policy["bindings"])
        return copy.deepcopy(stored)

    def _check_member(self, member: str) -> None:
        """A service account of a project must exist (and be known to IAM already)."""
        email = member.removeprefix("serviceAccount:")
        if email == member or not email.endswith(".iam.gserviceaccount.com"):
            return
        if self.state.unseen.get(email, 0) > 0:
            self.state.unseen[email] -= 1
        elif email in self.state.accounts:
            return
        raise invalid(f"Service account {email} does not exist.")

    # -- Secret Manager ------------------------------------------------------------------

    def _secret(self, name: str) -> dict[str, Any]:
        if name not in self.state.secrets:
            raise not_found(name)
        return self.state.secrets[name]

    def _version(self, name: str) -> tuple[str, dict[str, Any]]:
        secret_name, _, version = name.partition("/versions/")
        secret = self._secret(secret_name)
        if version == "latest":
            enabled = [v for v, e in secret["versions"].items() if e["state"] == "ENABLED"]
            if not enabled:
                raise not_found(name)
            version = max(enabled, key=int)
        if version not in secret["versions"]:
            raise not_found(name)
        return f"{secret_name}/versions/{version}", secret["versions"][version]

    def secretmanager_projects_secrets_versions_get(self, params, query, body, caller, media):
        name = params["name"]
        self._operator(caller, name.partition("/versions/")[0])
        resolved, entry = self._version(name)
        return Reply(200, {"name": resolved, "state": entry["state"], "etag": '"1"'})

    def secretmanager_projects_secrets_versions_access(self, params, query, body, caller, media):
        name = params["name"]
        secret_name = name.partition("/versions/")[0]
        secret = self._secret(secret_name)
        if caller == "operator":
            self._operator(caller, secret_name)
        elif not holds(secret["policy"], SECRET_ACCESSOR, caller):
            raise forbidden(f"{secret_name} (secretmanager.versions.access)")
        resolved, entry = self._version(name)
        if entry["state"] != "ENABLED":
            raise ApiError(400, "failedPrecondition", f"{resolved} is in {entry['state']} state")
        data = entry["data"]
        payload = {
            "data": base64.b64encode(data).decode(),
            "dataCrc32c": str(zlib.crc32(data)),  # the real one is CRC32C; not read here
        }
        return Reply(200, {"name": resolved, "payload": payload})

    def secretmanager_projects_secrets_getIamPolicy(self, params, query, body, caller, media):
        self._operator(caller, params["resource"])
        return Reply(200, copy.deepcopy(self._secret(params["resource"])["policy"]))

    def secretmanager_projects_secrets_setIamPolicy(self, params, query, body, caller, media):
        self._operator(caller, params["resource"])
        stored = self._secret(params["resource"])["policy"]
        return Reply(200, self._set_policy(stored, body.get("policy") or {}))

    # -- Artifact Registry ---------------------------------------------------------------

    def _repository(self, name: str) -> dict[str, Any]:
        if name not in self.state.repositories:
            raise not_found(name)
        return self.state.repositories[name]

    def artifactregistry_projects_locations_repositories_getIamPolicy(
        self, params, query, body, caller, media
    ):
        self._operator(caller, params["resource"])
        return Reply(200, copy.deepcopy(self._repository(params["resource"])))

    def artifactregistry_projects_locations_repositories_setIamPolicy(
        self, params, query, body, caller, media
    ):
        self._operator(caller, params["resource"])
        stored = self._repository(params["resource"])
        return Reply(200, self._set_policy(stored, body.get("policy") or {}))

    # -- Cloud Storage -------------------------------------------------------------------

    def _bucket(self, name: str) -> dict[str, Any]:
        if name not in self.state.buckets:
            raise ApiError(404, "notFound", "The specified bucket does not exist.")
        return self.state.buckets[name]

    def storage_buckets_insert(self, params, query, body, caller, media):
        project = query.get("project", "")
        self._operator(caller, f"projects/{project}")
        name = body.get("name", "")
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]", name):
            raise invalid(f"Invalid bucket name: '{name}'")
        if name in self.state.buckets:
            raise ApiError(
                409,
                "conflict",
                "Your previous request to create the named bucket succeeded and you already "
                "own it.",
            )
        resource = {
            "kind": "storage#bucket",
            "id": name,
            "name": name,
            "projectNumber": "123456789012",
            "location": body.get("location", "US").upper(),
            "storageClass": "STANDARD",
            "labels": body.get("labels", {}),
            "iamConfiguration": body.get("iamConfiguration", {}),
            "metageneration": "1",
            "etag": "CAE=",
        }
        policy = {
            "kind": "storage#policy",
            "resourceId": f"projects/_/buckets/{name}",
            "version": 1,
            "etag": self.state.etag(),
            "bindings": [
                {"role": "roles/storage.legacyBucketOwner", "members": [f"projectOwner:{project}"]},
                {
                    "role": "roles/storage.legacyBucketReader",
                    "members": [f"projectViewer:{project}"],
                },
            ],
        }
        self.state.buckets[name] = {"resource": resource, "policy": policy, "objects": {}}
        return Reply(200, copy.deepcopy(resource))

    def storage_buckets_get(self, params, query, body, caller, media):
        self._operator(caller, params["bucket"])
        return Reply(200, copy.deepcopy(self._bucket(params["bucket"])["resource"]))

    def storage_buckets_delete(self, params, query, body, caller, media):
        self._operator(caller, params["bucket"])
        if self._bucket(params["bucket"])["objects"]:
            raise ApiError(409, "conflict", "The bucket you tried to delete is not empty.")
        del self.state.buckets[params["bucket"]]
        return Reply(204, None)

    def storage_buckets_getIamPolicy(self, params, query, body, caller, media):
        self._operator(caller, params["bucket"])
        return Reply(200, copy.deepcopy(self._bucket(params["bucket"])["policy"]))

    def storage_buckets_setIamPolicy(self, params, query, body, caller, media):
        self._operator(caller, params["bucket"])
        stored = self._bucket(params["bucket"])["policy"]
        return Reply(200, self._set_policy(stored, body))

    def upload(self, rest: str, query: dict[str, str], raw: bytes, caller: str) -> Any:
        """POST /upload/storage/v1/b/BUCKET/o?uploadType=media&name=NAME (a simple upload)."""
        match = re.fullmatch(r"b/([^/]+)/o", rest)
        if match is None:
            raise not_found(rest)
        if query.get("uploadType") != "media" or not query.get("name"):
            raise invalid("a simple upload takes uploadType=media and name")
        bucket = unquote(match[1])
        self._operator(caller, bucket)
        entry = self._bucket(bucket)
        name = query["name"]
        generation = str(next(self.state.counter))
        resource = {
            "kind": "storage#object",
            "id": f"{bucket}/{name}/{generation}",
            "name": name,
            "bucket": bucket,
            "generation": generation,
            "metageneration": "1",
            "contentType": "application/octet-stream",
            "size": str(len(raw)),
            "md5Hash": base64.b64encode(hashlib.md5(raw).digest()).decode(),
        }
        entry["objects"][name] = (resource, raw)
        return copy.deepcopy(resource)

    def _object(self, bucket: str, name: str, caller: str) -> tuple[dict[str, Any], bytes]:
        entry = self._bucket(bucket)
        if caller == "operator":
            self._operator(caller, bucket)
        elif not holds(entry["policy"], OBJECT_VIEWER, caller):
            raise forbidden(f"{bucket}/{name} (storage.objects.get)")
        if name not in entry["objects"]:
            raise ApiError(404, "notFound", f"No such object: {bucket}/{name}")
        return entry["objects"][name]

    def storage_objects_get(self, params, query, body, caller, media):
        resource, data = self._object(params["bucket"], params["object"], caller)
        return Reply(200, data if media else copy.deepcopy(resource))

    def storage_objects_list(self, params, query, body, caller, media):
        """Pages of two (clients must follow nextPageToken), in name order as GCS lists."""
        self._operator(caller, params["bucket"])
        objects = self._bucket(params["bucket"])["objects"]
        items = [copy.deepcopy(objects[name][0]) for name in sorted(objects)]
        start = int(query.get("pageToken") or 0)
        answer: dict[str, Any] = {"kind": "storage#objects"}
        if items[start : start + 2]:
            answer["items"] = items[start : start + 2]
        if start + 2 < len(items):
            answer["nextPageToken"] = str(start + 2)
        return Reply(200, answer)

    def storage_objects_delete(self, params, query, body, caller, media):
        self._operator(caller, params["bucket"])
        objects = self._bucket(params["bucket"])["objects"]
        if params["object"] not in objects:
            raise ApiError(
                404, "notFound", f"No such object: {params['bucket']}/{params['object']}"
            )
        del objects[params["object"]]
        return Reply(204, None)


def _json(raw: bytes) -> Any:
    return json.loads(raw) if raw.strip() else None
