"""The GCP fake's IAM, Cloud Storage, Secret Manager and Artifact Registry parts hold
requests to the real contract (the discovery documents) and enforce what the provider and
the fetcher rely on: refusals of what the real APIs refuse, policy etags, a non-empty
bucket kept, and the policies applied to a service account's token."""

import base64
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from googleapiclient import discovery
from googleapiclient.errors import HttpError

from mlops_vm.provision.gcp.client import api_endpoint
from tests.fakes.gcp import FakeCompute
from tests.fakes.gcp_metadata import GcpMetadata

pytestmark = pytest.mark.usefixtures("clean_faults")


def build(fake: FakeCompute, api: str) -> Any:
    return discovery.build(
        api,
        "v1",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": api_endpoint(fake.endpoint_url, api)},
        static_discovery=True,
    )


def status_of(call: Any) -> int:
    with pytest.raises(HttpError) as raised:
        call.execute()
    return raised.value.resp.status


def get(url: str, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def test_what_the_real_apis_refuse_is_refused(fake, project):
    iam = build(fake, "iam").projects().serviceAccounts()
    parent = f"projects/{project}"
    assert status_of(iam.create(name=parent, body={"accountId": "Bad_Id"})) == 400
    assert status_of(iam.create(name=parent, body={"accountId": "good-id", "bogus": 1})) == 400
    iam.create(name=parent, body={"accountId": "good-id"}).execute()
    assert status_of(iam.create(name=parent, body={"accountId": "good-id"})) == 409
    missing = f"{parent}/serviceAccounts/none@{project}.iam.gserviceaccount.com"
    assert status_of(iam.get(name=missing)) == 404
    storage = build(fake, "storage").buckets()
    assert status_of(storage.insert(project=project, body={"name": "A_B"})) == 400
    # Beyond what the client checks itself: an unknown query parameter, a wrong method.
    assert get(f"{fake.endpoint_url}storage/v1/b/b-{project}?bogus=1", "")[0] == 400
    wrong = urllib.request.Request(
        f"{fake.endpoint_url}storage/v1/b/b-{project}/iam", method="DELETE"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(wrong, timeout=10)
    assert refused.value.code == 400


def test_policies_take_an_etag_and_existing_accounts_only(fake, project):
    secret = fake.identity.add_secret(project, "s", "v")
    secrets = build(fake, "secretmanager").projects().secrets()
    policy = secrets.getIamPolicy(resource=secret).execute()
    stranger = f"serviceAccount:nobody@{project}.iam.gserviceaccount.com"
    binding = {"role": "roles/secretmanager.secretAccessor", "members": [stranger]}
    request = secrets.setIamPolicy(
        resource=secret, body={"policy": {**policy, "bindings": [binding]}}
    )
    assert status_of(request) == 400  # no such service account
    outsider = {"role": "roles/secretmanager.secretAccessor", "members": ["user:a@example.com"]}
    secrets.setIamPolicy(
        resource=secret, body={"policy": {**policy, "bindings": [outsider]}}
    ).execute()
    stale = secrets.setIamPolicy(resource=secret, body={"policy": {**policy, "bindings": []}})
    assert status_of(stale) == 409  # the etag read before the change


def test_a_bucket_with_objects_is_not_deleted(fake, project):
    bucket = f"b-{project}"
    build(fake, "storage").buckets().insert(project=project, body={"name": bucket}).execute()
    url = f"{fake.endpoint_url}upload/storage/v1/b/{bucket}/o?uploadType=media&name=a%2Fb"
    urllib.request.urlopen(urllib.request.Request(url, data=b"x", method="POST"), timeout=10)
    buckets = build(fake, "storage").buckets()
    assert status_of(buckets.delete(bucket=bucket)) == 409
    build(fake, "storage").objects().delete(bucket=bucket, object="a/b").execute()
    buckets.delete(bucket=bucket).execute()


def test_a_service_accounts_token_reads_only_what_its_policies_grant(fake, project):
    email = f"reader@{project}.iam.gserviceaccount.com"
    build(fake, "iam").projects().serviceAccounts().create(
        name=f"projects/{project}", body={"accountId": "reader"}
    ).execute()
    secret = fake.identity.add_secret(project, "granted", "the value")
    token = fake.identity.issue_token(email)
    access = f"{fake.endpoint_url}secretmanager/v1/{secret}/versions/latest:access"
    assert get(access, token)[0] == 403
    secrets = build(fake, "secretmanager").projects().secrets()
    policy = secrets.getIamPolicy(resource=secret).execute()
    binding = {"role": "roles/secretmanager.secretAccessor", "members": [f"serviceAccount:{email}"]}
    secrets.setIamPolicy(
        resource=secret, body={"policy": {**policy, "bindings": [binding]}}
    ).execute()
    status, body = get(access, token)
    assert status == 200
    answer = json.loads(body)
    assert answer["name"] == f"{secret}/versions/1"
    assert base64.b64decode(answer["payload"]["data"]) == b"the value"


def test_the_metadata_stand_in_wants_the_metadata_flavor_header():
    metadata = GcpMetadata(email="e", token="t")
    port = metadata.start()
    try:
        url = f"http://127.0.0.1:{port}/computeMetadata/v1/instance/service-accounts/default/token"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10)
        assert refused.value.code == 403
        request = urllib.request.Request(url, headers={"Metadata-Flavor": "Google"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.loads(answer.read())["access_token"] == "t"
    finally:
        metadata.stop()
