"""Acceptance: a VM boots by identity - payload from S3, secrets from Secrets Manager and
SSM, credentials from an instance-metadata stand-in - and serves.

As tests/bootstrap/test_boot_vm.py, a VM container of the local cloud gets its user-data
through cloud-init's NoCloud seed. Here the user-data holds only the fetcher and where
things are: moto in server mode (S3, Secrets Manager, SSM) and an IMDSv2 stand-in
(tests/fakes/imds.py) run in this process, listening on the platform network's gateway
address, which the VM reaches. The fetcher is pointed at them by the source's
metadata_url and endpoints (the AWS provider's boot_metadata_url / boot_endpoint_url
options); on EC2 they default to 169.254.169.254 and AWS's own endpoints. The payload is
over 48 KB (three times EC2's whole user-data limit), the registry password and the API
key are in the secret stores only, and the VM serves HTTPS with the key required.
"""

import base64
import os
import time
import uuid
from collections.abc import Iterator

import boto3
import pytest
import requests
from sklearn.datasets import load_iris

from mlops_vm.bootstrap import BootConfig
from mlops_vm.bootstrap.boot_source import BootPlan, render_fetch_user_data
from mlops_vm.bootstrap.payload import DONE_MARKER
from mlops_vm.bootstrap.user_data import user_data_bytes
from mlops_vm.localcloud import images, pki, registry
from mlops_vm.localcloud.docker_cli import docker
from mlops_vm.localcloud.vm import container_ip, remove_vm, run_vm
from tests.bootstrap.test_boot_vm import (
    BOOT_TIMEOUT_S,
    LABEL,
    NETWORK,
    NGINX_CA,
    boot_log,
    vm_has_file,
    wait_for_cloud_init,
    wheel_mirror,
    wheelhouse,
    write_seed,
)
from tests.fakes.imds import CREDENTIALS_PATH, InstanceMetadata
from tests.providers.test_aws import start_moto_server

pytestmark = pytest.mark.slow

__all__ = ["wheel_mirror", "wheelhouse"]  # fixtures shared with the boot test

REGION = "eu-west-1"
ROLE = "mlops-vm-boot-test-instance"
API_KEY = "boot-by-identity-api-key-" + uuid.uuid4().hex
PAYLOAD_MIN_BYTES = 48 * 1024
INSTANCE_SECRET = "instance-profile-secret-" + uuid.uuid4().hex


def gateway(network: str) -> str:
    """The platform network's gateway: this machine, as the VMs reach it."""
    return docker("network", "inspect", network, "-f", "{{(index .IPAM.Config 0).Gateway}}").strip()


@pytest.fixture(scope="module")
def cloud(platform, tmp_path_factory) -> Iterator[dict]:
    """moto (S3, Secrets Manager, SSM) and the metadata stand-in, on the gateway address."""
    address = gateway(NETWORK)
    patch = pytest.MonkeyPatch()
    for name in list(os.environ):
        if name.startswith("AWS_"):
            patch.delenv(name)
    patch.setenv("AWS_ACCESS_KEY_ID", "testing")
    patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    patch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    patch.setenv("NO_PROXY", address)
    moto = start_moto_server(address, tmp_path_factory.mktemp("moto"), patch)
    host, port = moto.get_host_and_port()
    imds = InstanceMetadata(
        ROLE,
        {
            "AccessKeyId": "ASIABOOTBYIDENTITY",
            "SecretAccessKey": INSTANCE_SECRET,
            "Token": "session-" + uuid.uuid4().hex,
            "Expiration": "2099-01-01T00:00:00Z",
        },
    )
    imds_port = imds.start(address)
    try:
        yield {
            "endpoint": f"http://{host}:{port}",
            "metadata_url": f"http://{address}:{imds_port}",
            "imds": imds,
        }
    finally:
        imds.stop()
        moto.stop()
        patch.undo()


@pytest.fixture(scope="module")
def booted_vm(platform, wheel_mirror, cloud, tmp_path_factory):
    creds = registry.ensure_credentials()
    endpoint = cloud["endpoint"]

    def client(service: str):
        return boto3.client(service, region_name=REGION, endpoint_url=endpoint)

    password_arn = client("secretsmanager").create_secret(
        Name="registry-password", SecretString=creds.password
    )["ARN"]
    client("ssm").put_parameter(Name="/boot/api-key", Value=API_KEY, Type="SecureString")
    account = client("sts").get_caller_identity()["Account"]
    key_arn = f"arn:aws:ssm:{REGION}:{account}:parameter/boot/api-key"
    image = registry.model_image_ref("1.0")
    boot = BootConfig.for_model(
        image,
        registry_ca_cert=pki.ca_pair().cert.read_text(),
        replicas=2,
        pip_find_links=wheel_mirror,
        role_vars={
            "model_service_registry": image.split("/", 1)[0],
            "model_service_registry_username": creds.username,
            # Read by no role: weight that makes the payload over 48 KB (incompressible).
            "mlops_vm_test_padding": base64.b64encode(os.urandom(PAYLOAD_MIN_BYTES)).decode(),
        },
    )
    plan = BootPlan.for_config(
        boot,
        secrets={
            "model_service_registry_password": password_arn,
            "nginx_proxy_api_keys": (key_arn,),
        },
    )
    assert len(plan.payload) > PAYLOAD_MIN_BYTES
    client("s3").create_bucket(
        Bucket="boot-payloads", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    client("s3").put_object(Bucket="boot-payloads", Key=plan.payload_key(), Body=plan.payload)
    source = plan.source(
        "aws",
        f"s3://boot-payloads/{plan.payload_key()}",
        region=REGION,
        metadata_url=cloud["metadata_url"],
        endpoints={"s3": endpoint, "secretsmanager": endpoint, "ssm": endpoint},
    )
    user_data = render_fetch_user_data(source)
    name = f"mlops-vm-test-identity-{uuid.uuid4().hex[:6]}"
    seed = write_seed(tmp_path_factory.mktemp("seed") / "nocloud", user_data, name)
    run_vm(
        name,
        network=NETWORK,
        labels=LABEL,
        # The packages already installed (tests/environments.py PACKAGED_HOSTS): this test is
        # about what the VM fetches by identity; test_boot_vm boots the plain image.
        image=images.PACKAGED_VM_IMAGE,
        extra_args=("--volume", f"{seed}:/var/lib/cloud/seed/nocloud:ro"),
    )
    try:
        status = wait_for_cloud_init(name, BOOT_TIMEOUT_S)
        yield name, status, creds, user_data, plan
    finally:
        remove_vm(name)


def post(url: str, ca: str, **options) -> requests.Response:
    """POST, retried while Nginx is not yet listening."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return requests.post(url, verify=ca, timeout=10, **options)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_user_data_holds_no_secret_and_is_small(booted_vm):
    _, _, creds, user_data, plan = booted_vm
    for value in (creds.password, API_KEY, INSTANCE_SECRET):
        assert value not in user_data
    assert len(user_data_bytes(user_data, "aws")) < len(plan.payload) // 4


def test_the_vm_fetched_its_boot_and_serves_with_the_key(
    booted_vm, cloud, reference_model, tmp_path
):
    name, status, _, _, _ = booted_vm
    assert "status: done" in status, f"cloud-init: {status}\n{boot_log(name)}"
    assert vm_has_file(name, DONE_MARKER)
    # The credentials came from the metadata stand-in, over an IMDSv2 session token.
    assert CREDENTIALS_PATH + ROLE in cloud["imds"].served
    ca = tmp_path / "nginx-ca.crt"
    ca.write_text(docker("exec", name, "cat", NGINX_CA))
    address = container_ip(name, NETWORK)
    rows = load_iris().data[::7]
    url = f"https://{address}/predict"
    refused = post(url, str(ca), json={"instances": rows.tolist()})
    assert refused.status_code == 401
    response = post(
        url,
        str(ca),
        json={"instances": rows.tolist()},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == reference_model.predict(rows).tolist()


def test_the_secrets_are_gone_from_the_vm(booted_vm):
    name, _, creds, _, _ = booted_vm
    assert vm_has_file(name, "/opt/mlops-vm/boot/vars.yml")
    assert not vm_has_file(name, "/opt/mlops-vm/boot/secrets.yml")
    for value in (creds.password, API_KEY):
        leaked = docker(
            "exec", name, "grep", "-rlF", value, "/var/log", "/opt/mlops-vm/boot", check=False
        )
        assert leaked == ""
