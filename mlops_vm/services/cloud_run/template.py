"""The revision template: the container (image, port, resources, env and secrets, probes),
scaling, concurrency and GPU; and its revision name, a hash of what runs, so the same spec
names the same revision (idempotence) and a rollback finds the revision it wants."""

import hashlib
import json
import math
from typing import Any

from mlops_vm.provision.model import LABEL_ENV
from mlops_vm.services.base import TAG_IMAGE, TAG_INVENTORY_IMAGE, TAG_SOURCE, ServiceSpec
from mlops_vm.services.cloud_run.secrets import env_entries
from mlops_vm.services.settings import CloudRunServiceConfig

CONTAINER = "model"
PROBE_PERIOD_S = 10
PROBE_TIMEOUT_S = 3
STARTUP_WINDOW_S = 240  # the model loads within this (startup probe, then liveness)
LIVENESS_FAILURES = 3


def probe(path: str, port: int, *, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": PROBE_PERIOD_S,
        "timeoutSeconds": PROBE_TIMEOUT_S,
        "failureThreshold": failures,
    }


def labels(spec: ServiceSpec) -> dict[str, str]:
    return {LABEL_ENV: spec.env}


def memory(spec: ServiceSpec) -> str:
    return f"{spec.memory_mb}Mi"


def cpu(spec: ServiceSpec) -> str:
    return f"{spec.cpu:g}" if spec.cpu >= 1 else f"{round(spec.cpu * 1000)}m"


def runtime_template(
    spec: ServiceSpec, options: CloudRunServiceConfig, project: str, image: str
) -> dict[str, Any]:
    """What runs (without the revision name and the release annotations)."""
    limits = {"cpu": cpu(spec), "memory": memory(spec)}
    gpu = spec.gpu > 0
    if gpu:
        limits["nvidia.com/gpu"] = str(spec.gpu)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        # Cloud Run sets PORT to containerPort; the model image listens on $PORT.
        "ports": [{"name": "http1", "containerPort": spec.port}],
        "env": env_entries(project, spec),
        "resources": {"limits": limits, "cpuIdle": options.cpu_idle and not gpu},
        "startupProbe": probe(
            spec.readiness_path, spec.port, failures=math.ceil(STARTUP_WINDOW_S / PROBE_PERIOD_S)
        ),
        "livenessProbe": probe(spec.health_path, spec.port, failures=LIVENESS_FAILURES),
    }
    template: dict[str, Any] = {
        "labels": labels(spec),
        "containers": [container],
        "scaling": {
            "minInstanceCount": spec.min_instances,
            "maxInstanceCount": spec.max_instances,
        },
    }
    if spec.concurrency is not None:
        template["maxInstanceRequestConcurrency"] = spec.concurrency
    if gpu:
        template["nodeSelector"] = {"accelerator": options.gpu_type}
    if options.service_account:
        template["serviceAccount"] = options.service_account
    return template


def revision_name(service: str, runtime: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(runtime, sort_keys=True).encode()).hexdigest()
    return f"{service}-{digest[:10]}"


def revision_template(
    spec: ServiceSpec, options: CloudRunServiceConfig, project: str, image: str
) -> dict[str, Any]:
    """The full template: named by what runs, annotated with the release it carries."""
    runtime = runtime_template(spec, options, project, image)
    return {
        **runtime,
        "revision": revision_name(spec.name, runtime),
        "annotations": {
            TAG_IMAGE: spec.image,
            TAG_SOURCE: spec.source,
            TAG_INVENTORY_IMAGE: spec.inventory_image or spec.image,
        },
    }
