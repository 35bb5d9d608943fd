"""What `status` and the run summary print for a service on the user's domain (issue 25):
the custom endpoint, the platform's own URL and the DNS record to create; nothing more for
a service on the platform's URL."""

from dataclasses import asdict

from mlops_vm.commands.report import service_rows
from mlops_vm.commands.status import custom_domain_rows, service_summary
from mlops_vm.services.base import Revision, ServiceRecord

PLATFORM_URL = "https://mlops-vm-prod-abc123-ew.a.run.app"


def record(**resources: object) -> dict:
    return asdict(
        ServiceRecord(
            name="mlops-vm-prod",
            url="https://api.example.com" if resources else PLATFORM_URL,
            active=Revision(id="rev-1", image="model:1.0"),
            healthy=True,
            resources=dict(resources),
        )
    )


def behind_lb() -> dict:
    return record(
        platform_url=PLATFORM_URL,
        dns_record={"name": "api.example.com", "type": "A", "value": "34.1.2.3"},
    )


def test_status_shows_the_domain_the_platform_url_and_the_dns_record():
    payload = {
        "release": "model:1.0",
        "inventory_image": "model:1.0",
        "target": "cloud_run",
        "service": behind_lb(),
    }
    rows = dict(service_summary(payload))
    assert rows["endpoint"] == "https://api.example.com"
    assert rows["platform URL"] == PLATFORM_URL
    assert rows["DNS record"] == "api.example.com A 34.1.2.3"


def test_the_run_summary_shows_the_platform_url_and_the_dns_record():
    rows = dict(service_rows(behind_lb()))
    assert rows["platform URL"] == PLATFORM_URL
    assert rows["DNS record"] == "api.example.com A 34.1.2.3"


def test_a_service_on_its_platform_url_has_no_domain_rows():
    payload = {"release": "m", "inventory_image": "m", "target": "ecs", "service": record()}
    labels = [label for label, _ in service_summary(payload)]
    assert "platform URL" not in labels and "DNS record" not in labels
    assert dict(service_summary(payload))["endpoint"] == PLATFORM_URL


def test_every_dns_record_a_platform_needs_is_shown():
    """App Service needs two: the CNAME to the site and the TXT record of ownership."""
    cname = {"name": "api.example.com", "type": "CNAME", "value": "app.azurewebsites.net"}
    txt = {"name": "asuid.api.example.com", "type": "TXT", "value": "ABC123"}
    service = {"resources": {"dns_record": cname, "dns_records": [cname, txt]}}
    assert [value for name, value in custom_domain_rows(service) if name == "DNS record"] == [
        "api.example.com CNAME app.azurewebsites.net",
        "asuid.api.example.com TXT ABC123",
    ]
