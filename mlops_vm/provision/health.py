"""A health probe for providers whose load balancer is not a managed service."""

import warnings

import requests
import urllib3

from mlops_vm.provision.model import Instance, InstanceStatus, TargetHealth


def probe_https(instance: Instance, path: str, port: int = 443) -> TargetHealth:
    """GET https://<instance>:<port><path>; healthy on 200.

    Like a cloud load balancer, the probe does not verify the backend's certificate.
    """
    if instance.status != InstanceStatus.RUNNING or not instance.address:
        return TargetHealth(instance.id, False, str(instance.status))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            answer = requests.get(
                f"https://{instance.address}:{port}{path}", verify=False, timeout=3
            )
    except requests.RequestException as error:
        return TargetHealth(instance.id, False, type(error).__name__)
    return TargetHealth(instance.id, answer.status_code == 200, f"HTTP {answer.status_code}")
