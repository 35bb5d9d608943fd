"""GPU settings of the roles, rendered by Ansible itself from the roles' own defaults, vars
and templates: NVIDIA's apt sources (each key trusted for its repository only), the
daemon.json nvidia runtime, and the device requests each model replica is started with.

What this cannot show: a GPU. No machine here has one, so the driver install, the
nvidia runtime starting a container and `nvidia-smi` inside a replica are not exercised;
the rendered configuration is what is checked.
"""

import json
import platform
from pathlib import Path

import pytest
import yaml

from mlops_vm import paths
from tests.ansible_cli import render_locally

ROLES = paths.PROJECT_DIR / "roles"
EXTRA_VARS = {
    "docker_engine_nvidia_enabled": True,
    "docker_engine_keyring_dir": "/etc/apt/keyrings",
}


def render_playbook(out: Path) -> list[dict]:
    docker_engine, model_service = ROLES / "docker_engine", ROLES / "model_service"
    return [
        {
            "name": "Render the GPU settings of the roles",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": True,
            "tasks": [
                *(
                    {"ansible.builtin.include_vars": str(path)}
                    for path in (
                        docker_engine / "defaults" / "main.yml",
                        docker_engine / "vars" / "main.yml",
                        docker_engine / "vars" / "Debian.yml",
                        model_service / "vars" / "main.yml",
                    )
                ),
                {
                    "ansible.builtin.template": {
                        "src": str(docker_engine / "templates" / "apt-source.sources.j2"),
                        "dest": f"{out}/{{{{ __docker_engine_repo_name }}}}.sources",
                        "mode": "0644",
                    },
                    "loop": "{{ __docker_engine_nvidia_repositories }}",
                    "loop_control": {"loop_var": "__docker_engine_repo_name"},
                },
                {
                    "ansible.builtin.template": {
                        "src": str(docker_engine / "templates" / "daemon.json.j2"),
                        "dest": f"{out}/daemon.json",
                        "mode": "0644",
                    }
                },
                {
                    "ansible.builtin.copy": {
                        "content": "{{ __model_service_device_requests | to_json }}",
                        "dest": f"{out}/devices-{{{{ item.0 }}}}-{{{{ item.1 }}}}.json",
                        "mode": "0644",
                    },
                    "vars": {
                        "model_service_gpus": "{{ item.0 }}",
                        "__model_service_index": "{{ item.1 }}",
                    },
                    "loop": "{{ ['all', '2', 'per_replica'] | product([0, 1]) | list }}",
                },
                {
                    "ansible.builtin.copy": {
                        "content": "{{ __docker_engine_apt_repositories['nvidia-cuda'].key_url }}",
                        "dest": f"{out}/cuda-key-url",
                        "mode": "0644",
                    }
                },
            ],
        }
    ]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gpu-render")
    playbook = out / "render.yml"
    playbook.write_text(yaml.safe_dump(render_playbook(out)))
    # Extra variables: above the defaults the playbook includes.
    proc = render_locally(playbook, json.dumps(EXTRA_VARS))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return out


def sources(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split(": ", 1) for line in lines)


# This machine's architecture, as NVIDIA's CUDA repository and Debian name it.
CUDA_ARCH, DEBIAN_ARCH = {"x86_64": ("x86_64", "amd64"), "aarch64": ("sbsa", "arm64")}[
    platform.machine()
]
CUDA_REPO = f"https://developer.download.nvidia.com/compute/cuda/repos/debian12/{CUDA_ARCH}/"


def test_nvidias_driver_and_toolkit_repositories_each_trust_their_own_key(rendered):
    cuda = sources(rendered / "nvidia-cuda.sources")
    assert cuda == {
        "Types": "deb",
        "URIs": CUDA_REPO,
        "Suites": "/",
        "Architectures": DEBIAN_ARCH,
        "Signed-By": "/etc/apt/keyrings/nvidia-cuda.asc",
    }
    assert (rendered / "cuda-key-url").read_text() == f"{CUDA_REPO}3bf863cc.pub"
    toolkit = sources(rendered / "nvidia-container-toolkit.sources")
    assert toolkit["URIs"] == "https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH)"
    assert toolkit["Suites"] == "/"
    assert toolkit["Signed-By"] == "/etc/apt/keyrings/nvidia-container-toolkit.asc"
    assert "Components" not in toolkit  # flat repositories


def test_the_daemon_registers_the_nvidia_runtime(rendered):
    daemon = json.loads((rendered / "daemon.json").read_text())
    assert daemon["runtimes"] == {"nvidia": {"path": "nvidia-container-runtime", "args": []}}
    assert "default-runtime" not in daemon  # replicas ask for their GPUs themselves


@pytest.mark.parametrize(
    ("gpus", "index", "request_fields"),
    [
        ("all", 0, {"count": -1}),
        ("all", 1, {"count": -1}),
        ("2", 1, {"count": 2}),
        ("per_replica", 0, {"device_ids": ["0"]}),
        ("per_replica", 1, {"device_ids": ["1"]}),
    ],
)
def test_each_replica_asks_for_its_gpus(rendered, gpus, index, request_fields):
    [request] = json.loads((rendered / f"devices-{gpus}-{index}.json").read_text())
    assert request == {"driver": "nvidia", "capabilities": [["gpu"]], **request_fields}
