"""Boot by identity: the fetcher reads the payload and the secrets with the instance's
credentials from the metadata stand-in (moto in server mode here; no VM needed)."""

import base64
import datetime
import gzip
import hashlib
import json
import os
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
import yaml
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from mlops_vm.bootstrap import BootConfig
from mlops_vm.bootstrap.boot_source import (
    BootPlan,
    fetcher_code,
    render_fetch_user_data,
)
from mlops_vm.bootstrap.fetch_script import sign_v4
from mlops_vm.bootstrap.user_data import USER_DATA_LIMITS, user_data_bytes
from tests.fakes.imds import CREDENTIALS_PATH, InstanceMetadata
from tests.providers.test_aws import start_moto_server

REGION = "eu-west-1"
PASSWORD = "pw-{{ not a template }}-'quoted'-pässword"
API_KEYS = ["key-one-0123456789", "key-two-9876543210"]
ROLE = "mlops-vm-test-model"


class UnsafeLoader(yaml.SafeLoader):
    """Reads Ansible's !unsafe tag as the plain string it wraps."""


UnsafeLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    patch = pytest.MonkeyPatch()
    server = start_moto_server("127.0.0.1", tmp_path_factory.mktemp("moto"), patch)
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    patch.undo()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, moto_url: str):
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")

    def client(service: str):
        return boto3.client(service, region_name=REGION, endpoint_url=moto_url)

    return client


@pytest.fixture
def imds() -> Iterator[InstanceMetadata]:
    metadata = InstanceMetadata(
        ROLE,
        {
            "AccessKeyId": "ASIAINSTANCEPROFILE",
            "SecretAccessKey": "instance-secret",
            "Token": "instance-session-token",
            "Expiration": "2099-01-01T00:00:00Z",
        },
    )
    metadata.start()
    yield metadata
    metadata.stop()


def boot_config(**options) -> BootConfig:
    return BootConfig.for_model("registry.example.test/team/iris:1.4", replicas=2, **options)


def test_sign_v4_matches_botocore():
    credentials = {"AccessKeyId": "AKID", "SecretAccessKey": "secret", "Token": "tok"}
    for method, url, service, body, headers in [
        ("GET", "https://b.s3.eu-west-1.amazonaws.com/boot/a%20b.xz?x-id=GetObject", "s3", b"", {}),
        (
            "POST",
            "https://secretsmanager.eu-west-1.amazonaws.com/",
            "secretsmanager",
            b'{"SecretId": "arn"}',
            {"content-type": "application/x-amz-json-1.1", "x-amz-target": "t.Op"},
        ),
    ]:
        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
        signer_class = S3SigV4Auth if service == "s3" else SigV4Auth
        signer_class(Credentials("AKID", "secret", "tok"), service, REGION).add_auth(request)
        # Signed at botocore's own time: ours at the same.
        now = datetime.datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
        ours = sign_v4(method, url, REGION, service, credentials, body, headers, now=now)
        assert ours["authorization"] == request.headers["Authorization"]


def test_fetcher_reads_payload_and_secrets_with_the_instance_credentials(
    aws, moto_url: str, imds: InstanceMetadata, tmp_path: Path
):
    secret_arn = aws("secretsmanager").create_secret(Name="registry", SecretString=PASSWORD)["ARN"]
    key_arns = [
        aws("secretsmanager").create_secret(Name=f"api-key-{i}", SecretString=key)["ARN"]
        for i, key in enumerate(API_KEYS[:1])
    ]
    aws("ssm").put_parameter(Name="/team/api-key", Value=API_KEYS[1], Type="SecureString")
    account = aws("sts").get_caller_identity()["Account"]
    key_arns.append(f"arn:aws:ssm:{REGION}:{account}:parameter/team/api-key")
    plan = BootPlan.for_config(
        boot_config(),
        secrets={
            "model_service_registry_password": secret_arn,
            "nginx_proxy_api_keys": tuple(key_arns),
        },
    )
    aws("s3").create_bucket(
        Bucket="boot-bucket", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    aws("s3").put_object(Bucket="boot-bucket", Key=plan.payload_key(), Body=plan.payload)
    source = plan.source(
        "aws",
        f"s3://boot-bucket/{plan.payload_key()}",
        region=REGION,
        metadata_url=f"http://127.0.0.1:{imds.server.server_address[1]}",
        endpoints={"s3": moto_url, "secretsmanager": moto_url, "ssm": moto_url},
    )
    user_data = render_fetch_user_data(source)
    for value in (PASSWORD, *API_KEYS, "instance-secret"):
        assert value not in user_data
    boot_dir = tmp_path / "boot"
    boot_dir.mkdir()
    run = run_fetcher(boot_dir, source.as_json())
    assert run.returncode == 0, run.stderr
    assert PASSWORD not in run.stdout + run.stderr
    assert (boot_dir / "run.sh").is_file()
    assert "-e @/opt/mlops-vm/boot/secrets.yml" in (boot_dir / "run.sh").read_text()
    assert (boot_dir / "roles/model_service/tasks/main.yml").is_file()
    secrets_file = boot_dir / "secrets.yml"
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    text = secrets_file.read_text()
    secrets = yaml.load(text, Loader=UnsafeLoader)
    assert secrets == {
        "model_service_registry_password": PASSWORD,
        "nginx_proxy_api_keys": API_KEYS,
    }
    # Every value is kept from Ansible's templating ("{{" in the password).
    assert text.count("!unsafe ") == 3
    # The credentials came from the metadata stand-in, over a session token.
    assert imds.served[:3] == ["/latest/api/token", CREDENTIALS_PATH, CREDENTIALS_PATH + ROLE]


def test_a_payload_that_is_not_the_expected_one_is_refused(
    aws, moto_url: str, imds: InstanceMetadata, tmp_path: Path
):
    plan = BootPlan.for_config(boot_config())
    aws("s3").create_bucket(
        Bucket="boot-tampered", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    aws("s3").put_object(Bucket="boot-tampered", Key=plan.payload_key(), Body=b"not it")
    source = plan.source(
        "aws",
        f"s3://boot-tampered/{plan.payload_key()}",
        region=REGION,
        metadata_url=f"http://127.0.0.1:{imds.server.server_address[1]}",
        endpoints={"s3": moto_url},
    )
    run = run_fetcher(tmp_path, source.as_json())
    assert run.returncode != 0
    assert "is not the payload expected" in run.stderr
    assert not (tmp_path / "run.sh").exists()


def test_user_data_size_does_not_grow_with_the_payload():
    small = BootPlan.for_config(boot_config())
    # Three times today's payload (incompressible filler in a role variable).
    filler = base64.b85encode(os.urandom(3 * len(small.payload))).decode()
    large = BootPlan.for_config(boot_config(role_vars={"model_service_env": {"FILLER": filler}}))
    assert len(large.payload) > 3 * len(small.payload)
    sizes = []
    for plan in (small, large):
        user_data = render_fetch_user_data(
            plan.source("aws", "s3://b/" + plan.payload_key(), region=REGION)
        )
        sizes.append(len(user_data_bytes(user_data, "aws")))
    # Only the hash differs (gzip of a hex digest varies by a byte or two).
    assert abs(sizes[0] - sizes[1]) < 16
    assert max(sizes) < USER_DATA_LIMITS["aws"] // 2
    document = yaml.safe_load(gzip.decompress(user_data_bytes(user_data, "aws")))
    assert document["runcmd"] == [
        ["python3", "/opt/mlops-vm/boot/fetch.py", "/opt/mlops-vm/boot/source.json"]
    ]
    assert (
        json.loads(document["write_files"][1]["content"])["payload"]["sha256"]
        == large.payload_sha256
    )


def test_a_boot_by_identity_refuses_secret_values():
    with pytest.raises(ValueError, match="model_service_registry_password"):
        BootPlan.for_config(
            BootConfig.for_model("r.test/a/b:1", registry_username="u", registry_password="p")
        )


class CloudStandIn:
    """GCP's and Azure's metadata tokens, object storage and secret stores, as far as the
    fetcher uses them: each answer only with the token the metadata service handed out."""

    def __init__(self, payload: bytes, secrets: dict[str, str]) -> None:
        self.payload = payload
        self.secrets = secrets
        self.seen: list[str] = []

    def answer(self, path: str, headers) -> tuple[int, bytes]:
        self.seen.append(path)
        url = urllib.parse.urlsplit(path)
        query = dict(urllib.parse.parse_qsl(url.query))
        bearer = headers.get("Authorization", "")
        if url.path == "/computeMetadata/v1/instance/service-accounts/default/token":
            if headers.get("Metadata-Flavor") != "Google":
                return 403, b""
            return 200, json.dumps({"access_token": "gcp-token"}).encode()
        if url.path == "/metadata/identity/oauth2/token":
            if headers.get("Metadata") != "true" or query.get("client_id") != "client-1":
                return 400, b""
            return 200, json.dumps({"access_token": "az:" + query["resource"]}).encode()
        if url.path.startswith("/storage/v1/b/boot/o/") and query.get("alt") == "media":
            return (200, self.payload) if bearer == "Bearer gcp-token" else (401, b"")
        if url.path.startswith("/v1/projects/") and url.path.endswith(":access"):
            if bearer != "Bearer gcp-token":
                return 401, b""
            name = url.path.removeprefix("/v1/").removesuffix("/versions/latest:access")
            data = base64.b64encode(self.secrets[name].encode()).decode()
            return 200, json.dumps({"payload": {"data": data}}).encode()
        if url.path.startswith("/payloads/"):
            ok = bearer == "Bearer az:https://storage.azure.com/" and headers.get("x-ms-version")
            return (200, self.payload) if ok else (401, b"")
        if url.path.startswith("/secrets/") and query.get("api-version"):
            if bearer != "Bearer az:https://vault.azure.net":
                return 401, b""
            return 200, json.dumps({"value": self.secrets[url.path]}).encode()
        return 404, b""

    def start(self) -> str:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                status, body = stand_in.answer(self.path, self.headers)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"


def run_fetcher(directory: Path, source: str) -> subprocess.CompletedProcess[str]:
    """The fetcher run as the instance runs it, steps 1-3 only, with no AWS_* variable."""
    (directory / "fetch.py").write_text(fetcher_code())
    (directory / "source.json").write_text(source)
    return subprocess.run(
        [
            sys.executable,
            str(directory / "fetch.py"),
            str(directory / "source.json"),
            "--fetch-only",
        ],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "NO_PROXY": "127.0.0.1"},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("cloud", ["gcp", "azure"])
def test_fetcher_on_gcp_and_azure_uses_the_metadata_tokens(cloud: str, tmp_path: Path):
    # The payload of a boot that reads secrets (whichever: they are not in it).
    plan = BootPlan.for_config(boot_config(), secrets={"nginx_proxy_api_keys": ("any",)})
    gcp_refs = {"pw": "projects/p/secrets/registry", "key": "projects/p/secrets/api-key"}
    stand_in = CloudStandIn(
        plan.payload,
        {
            gcp_refs["pw"]: PASSWORD,
            gcp_refs["key"]: API_KEYS[0],
            "/secrets/registry": PASSWORD,
            "/secrets/api-key": API_KEYS[0],
        },
    )
    base = stand_in.start()
    try:
        if cloud == "gcp":
            refs = gcp_refs
            url = f"gs://boot/{plan.payload_key()}"
            options = {"endpoints": {"storage": base, "secretmanager": base}}
        else:
            refs = {"pw": f"{base}/secrets/registry", "key": f"{base}/secrets/api-key"}
            url = f"{base}/payloads/{plan.payload_key()}"
            options = {"identity_client_id": "client-1"}
        source = BootPlan.for_config(
            boot_config(),
            secrets={
                "model_service_registry_password": refs["pw"],
                "nginx_proxy_api_keys": (refs["key"],),
            },
        ).source(cloud, url, metadata_url=base, **options)
        run = run_fetcher(tmp_path, source.as_json())
    finally:
        stand_in.server.shutdown()
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "roles/nginx_proxy/tasks/main.yml").is_file()
    secrets = yaml.load((tmp_path / "secrets.yml").read_text(), Loader=UnsafeLoader)
    assert secrets == {
        "model_service_registry_password": PASSWORD,
        "nginx_proxy_api_keys": [API_KEYS[0]],
    }
