"""The local provider's resize: a VM container's CPU and memory limits, changed in place
with `docker update` on the real Docker engine (a plain container of the base image
stands in for the VM: only its limits matter here; the whole path, under load, is in
tests/e2e/test_release.py)."""

import json
import uuid
from collections.abc import Iterator

import pytest

from mlops_vm.localcloud.docker_cli import docker
from mlops_vm.localcloud.images import BASE_IMAGE
from mlops_vm.provision import ErrorCode, ProvisionError
from mlops_vm.provision.local import resize
from mlops_vm.provision.model import Instance, InstanceStatus

GIB = 2**30


@pytest.fixture
def vm() -> Iterator[Instance]:
    name = f"mlops-vm-test-resize-{uuid.uuid4().hex[:6]}"
    docker("run", "-d", "--name", name, BASE_IMAGE, "sleep", "600")
    try:
        yield Instance(id=name, name=name, status=InstanceStatus.RUNNING)
    finally:
        docker("rm", "-f", name, check=False)


def limits(name: str) -> tuple[int, int, int]:
    config = json.loads(docker("inspect", "--format", "{{json .HostConfig}}", name))
    return config["NanoCpus"], config["Memory"], config["MemorySwap"]


def test_a_vm_is_resized_in_place_and_then_left_alone(vm):
    started = docker("inspect", "--format", "{{.State.StartedAt}}", vm.name)
    assert resize.resize_container(vm, "local", dry_run=False) == []  # unlimited is "local"
    [change] = resize.resize_container(vm, "local-small", dry_run=True)
    assert str(change) == f"update instance {vm.name} (resize to local-small (1 CPUs, 2 GiB))"
    assert limits(vm.name) == (0, 0, 0)  # the dry run changed nothing
    assert resize.resize_container(vm, "local-small", dry_run=False) == [change]
    assert limits(vm.name) == (10**9, 2 * GIB, 2 * GIB)  # no swap beyond the limit
    assert resize.resize_container(vm, "local-small", dry_run=False) == []
    assert resize.resize_container(vm, "local-medium", dry_run=False)
    assert limits(vm.name) == (2 * 10**9, 4 * GIB, 4 * GIB)
    # Nothing restarted: the VM kept running through both resizes.
    assert docker("inspect", "--format", "{{.State.StartedAt}}", vm.name) == started


def test_an_unknown_local_machine_type_is_refused(vm):
    with pytest.raises(ProvisionError) as raised:
        resize.resize_container(vm, "t3.small", dry_run=True)
    assert raised.value.code is ErrorCode.INVALID_INPUT
    assert "local, local-medium, local-small" in raised.value.hint
    assert limits(vm.name) == (0, 0, 0)


def test_new_vms_start_with_their_machine_types_limits():
    assert resize.run_args("local") == ()
    assert resize.run_args("local-medium") == (
        *("--cpus", "2", "--memory", str(4 * GIB), "--memory-swap", str(4 * GIB)),
    )
