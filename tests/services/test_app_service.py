"""The App Service target (mlops_vm/services/app_service).

Contract: the control plane against the fake ARM (tests/fakes/azure: Microsoft.Web and
Microsoft.ContainerRegistry on ARM's LRO protocol). Real: each slot's health is asked of the
model image running on the local Docker engine under App Service's container contract
(tests/services/app_service_host.py: linuxFxVersion, app settings as the environment,
traffic to WEBSITES_PORT), so a release is gated by the real container.
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest

from mlops_vm.localcloud import registry
from mlops_vm.localcloud.images import model_tag
from mlops_vm.provision import ErrorCode, ProviderSettings, ProvisionError
from mlops_vm.services import RegistryAuth, ServiceSpec, get_service_target
from mlops_vm.services.app_service import AppServiceTarget, web
from mlops_vm.services.releases import choose_service_release
from tests.fakes.azure import SUBSCRIPTION_ID, FakeArm, FakeBearerPolicy, StaticTokenCredential
from tests.services.app_service_host import AppServiceHost

SECRET_URI = "https://iris-vault.vault.azure.net/secrets/api-token"
SECRET_VALUE = "s3cret-token-value"
PORT = 8181  # not the image's default 8080: the container must take WEBSITES_PORT
IRIS = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


@pytest.fixture(scope="module")
def arm() -> Iterator[FakeArm]:
    with FakeArm() as fake_arm:
        fake_arm.add_secret(SECRET_URI, SECRET_VALUE)  # validate reads it with our credential
        yield fake_arm


@pytest.fixture(autouse=True)
def plain_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ARM fake speaks plain http on 127.0.0.1: no proxy in the way."""
    for name in list(os.environ):
        if name.upper().endswith(("_CA_BUNDLE", "_PROXY")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setattr(web, "PROBE_INTERVAL_S", 0.5)


@pytest.fixture(scope="module")
def host(arm: FakeArm) -> Iterator[AppServiceHost]:
    stand_in = AppServiceHost(arm, secrets={SECRET_URI: SECRET_VALUE})
    yield stand_in
    stand_in.close()


def make_target(arm: FakeArm, host: AppServiceHost | None = None) -> AppServiceTarget:
    settings = ProviderSettings(
        name="azure",
        region="westeurope",
        endpoint_url=arm.url,
        options={"subscription_id": SUBSCRIPTION_ID, "poll_interval_s": 0.02},
    )
    return AppServiceTarget(
        settings,
        credential=StaticTokenCredential(),
        authentication_policy=FakeBearerPolicy(),
        probe=host.probe if host else (lambda url: None),
    )


def make_spec(env: str, **changes: object) -> ServiceSpec:
    spec = ServiceSpec(
        env=env,
        name=f"mlops-vm-{env}",
        image=model_tag("1.0"),
        port=PORT,
        env_vars={"LOG_LEVEL": "info"},
        secrets={"API_TOKEN": SECRET_URI},
        min_instances=2,
        max_instances=5,
        access="authenticated",
        healthy_timeout_s=60,
        options={"sku": "S1", "registry": "source", "cooldown_minutes": 10},
    )
    return replace(spec, **changes)  # type: ignore[arg-type]


def group_id(env: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/mlops-vm-{env}"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"options": {"sku": "B1"}}, "has no deployment slots or autoscale"),
        ({"options": {"sku": "F1"}}, "has no deployment slots or autoscale"),
        ({"options": {"sku": "X9"}}, "is not a Linux App Service plan SKU"),
        ({"max_instances": 11}, "out of the S1 plan's range 1..10"),
        ({"min_instances": 0}, "out of the S1 plan's range"),
        ({"secrets": {"TOKEN": "arn:aws:secretsmanager:x"}}, "is not a Key Vault secret URI"),
        ({"gpu": 1}, "App Service has no GPUs"),
        ({"concurrency": 10}, "no per-instance request limit"),
        (
            {"cert_file": "/x/cert.pem", "key_file": "/x/key.pem"},
            "a certificate needs service.domain",
        ),
        ({"domain": "api.example.com", "certificate": "kv"}, "is not the ARM id of a Key Vault"),
        ({"domain": "Not A Name"}, "is not a custom host name"),
        ({"domain": "x.azurewebsites.net"}, "is not a custom host name"),
        ({"domain": "*.example.com"}, "Managed Certificates do not cover wildcard"),
        ({"domain": "api.example.com", "cert_file": "/x/c.pem"}, "go together"),
    ],
)
def test_validate_refuses_what_app_service_would(arm: FakeArm, changes, message) -> None:
    """Contract: validate raises INVALID_INPUT and ARM sees no request at all."""
    arm.clear_requests()
    spec = make_spec("bad", **changes)
    if "options" in changes:
        spec = replace(spec, options={**make_spec("bad").options, **changes["options"]})
    with pytest.raises(ProvisionError) as raised:
        make_target(arm).validate(spec)
    assert raised.value.code is ErrorCode.INVALID_INPUT
    assert message in str(raised.value)
    assert arm.requests == []


def test_dispatch_routes_app_service_to_azure(arm: FakeArm) -> None:
    """Contract: the target name maps to this package and refuses another cloud."""
    with pytest.raises(ProvisionError, match="runs on azure"):
        get_service_target("app_service", ProviderSettings(name="aws", region="eu-west-1"))


@pytest.mark.slow
def test_provision_release_rollback_destroy(arm: FakeArm, host: AppServiceHost) -> None:
    """Real data plane + contract: provision (dry run first), the model answering /predict
    under WEBSITES_PORT, a second run with no change, a good release swapped in from staging,
    rollback, destroy twice. (A release that never becomes healthy: test_app_service_cli.)"""
    env = f"a{uuid.uuid4().hex[:8]}"
    target, spec = make_target(arm, host), make_spec(env)
    target.validate(spec)

    planned = target.ensure_service(spec, dry_run=True)
    assert {c.kind for c in planned.changes} >= {"resource_group", "app_service_plan", "web_app"}
    assert arm.resource(group_id(env)) is None

    result = target.ensure_service(spec)
    record = result.record
    assert record is not None and record.url == f"https://mlops-vm-{env}.azurewebsites.net"
    assert record.active is not None and record.active.image == model_tag("1.0")
    assert record.healthy is True and record.desired == 2

    site_id = f"{group_id(env)}/providers/Microsoft.Web/sites/mlops-vm-{env}"
    site = arm.resource(site_id)
    assert site["properties"]["httpsOnly"] is True
    assert site["identity"]["type"] == "SystemAssigned"
    production = arm.site_slots(site_id)["production"]
    config, settings = production["config"], production["appsettings"]
    assert config["linuxFxVersion"] == f"DOCKER|{model_tag('1.0')}"
    assert config["minTlsVersion"] == "1.2" and config["alwaysOn"] is True
    assert config["healthCheckPath"] == "/healthz"
    assert settings["WEBSITES_PORT"] == str(PORT)
    assert settings["API_TOKEN"] == f"@Microsoft.KeyVault(SecretUri={SECRET_URI})"
    assert SECRET_VALUE not in json.dumps(arm.site_slots(site_id))
    validation = production["auth"]["globalValidation"]
    assert validation["requireAuthentication"] is True
    assert validation["excludedPaths"] == ["/healthz", "/readyz"]  # probes get through
    plan = arm.resource(f"{group_id(env)}/providers/Microsoft.Web/serverfarms/mlops-vm-{env}-plan")
    assert plan["sku"]["name"] == "S1" and plan["properties"]["reserved"] is True
    autoscale = arm.resource(
        f"{group_id(env)}/providers/Microsoft.Insights/autoscalesettings/mlops-vm-{env}-autoscale"
    )
    profile = autoscale["properties"]["profiles"][0]
    assert profile["capacity"] == {"minimum": "2", "maximum": "5", "default": "2"}
    assert {r["scaleAction"]["cooldown"] for r in profile["rules"]} == {"PT10M"}

    # The real container, as App Service would run it, answers on WEBSITES_PORT.
    base = host.base_url(f"mlops-vm-{env}.azurewebsites.net")
    request = urllib.request.Request(
        f"{base}/predict",
        data=json.dumps(IRIS).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        predictions = json.load(answer)["predictions"]
    assert len(predictions) == 1

    arm.clear_requests()
    assert target.ensure_service(spec).changes == []
    # POST .../list reads settings (ARM's convention for reads that return secrets).
    assert [r for r in arm.writes() if not r.path.endswith("/list")] == []

    # A good release: set up on staging, health-checked there, swapped in.
    second = replace(spec, image=model_tag("1.1"), source="deploy")
    assert target.release(second, dry_run=True).changes
    assert arm.swaps(site_id) == []
    target.release(second)
    assert arm.swaps(site_id) == ["staging"]
    # Authentication stays with its slot on a swap: staging has its own.
    staging_auth = arm.site_slots(site_id)["staging"]["auth"]
    assert staging_auth["globalValidation"]["requireAuthentication"] is True
    record = target.status(env)
    assert record.active.image == model_tag("1.1") and record.previous.image == model_tag("1.0")
    wanted = choose_service_release("rollback", {"image": model_tag("1.1")}, record)
    assert wanted.release["image"] == model_tag("1.0")
    assert target.release(second).changes == []

    # Rollback swaps the previous release back.
    target.rollback(env)
    record = target.status(env)
    assert record.active.image == model_tag("1.0") and record.previous.image == model_tag("1.1")
    assert arm.swaps(site_id) == ["staging", "staging"]

    assert target.destroy(env)
    assert arm.resource(group_id(env)) is None
    assert arm.resources(resource_group=f"mlops-vm-{env}") == []
    assert target.destroy(env) == []
    assert target.status(env) is None


@pytest.mark.slow
def test_acr_copy_and_managed_identity_pull(
    arm: FakeArm, host: AppServiceHost, platform: registry.Credentials
) -> None:
    """Real image copy + contract: the registry is created, the image copied into it (the
    local TLS registry stands in for ACR's login server) and the web app runs the copy,
    pulled by managed identity; a second run copies nothing."""
    env = f"acr{uuid.uuid4().hex[:8]}"  # a new repository: the registry outlives the fake
    arm.set_registry_login_server(registry.HOST_ADDRESS)
    pushes: list[str] = []

    def login(login_server: str) -> RegistryAuth:
        pushes.append(login_server)
        return RegistryAuth(platform.username, platform.password)

    target = make_target(arm, host)
    target.registry_login = login
    source = f"{registry.HOST_ADDRESS}/mlops-vm/model-service:1.0"
    spec = make_spec(
        env,
        image=source,
        registry=RegistryAuth(platform.username, platform.password),
        options={"sku": "P0v3", "registry": "acr"},
    )
    target.validate(spec)
    result = target.ensure_service(spec)
    copy = f"{registry.HOST_ADDRESS}/mlops-vm-{env}:1.0"
    assert [str(c) for c in result.changes if c.kind == "image"] == [
        f"create image {copy} (copy of {source})"
    ]
    assert pushes == [registry.HOST_ADDRESS]
    site_id = f"{group_id(env)}/providers/Microsoft.Web/sites/mlops-vm-{env}"
    config = arm.site_slots(site_id)["production"]["config"]
    assert config["linuxFxVersion"] == f"DOCKER|{copy}"
    assert config["acrUseManagedIdentityCreds"] is True
    registries = arm.resources("Microsoft.ContainerRegistry/registries", f"mlops-vm-{env}")
    assert [r["properties"]["adminUserEnabled"] for r in registries] == [False]
    assert result.record is not None and result.record.healthy is True

    assert target.ensure_service(spec).changes == []
    assert target.destroy(env)
    assert arm.resources(resource_group=f"mlops-vm-{env}") == []
