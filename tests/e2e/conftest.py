"""Local environments for end-to-end modules, provisioned once per package run.

`local_pair`: 2 model VMs x 1 replica behind the local load balancer, serving, for a module
that only needs such an environment (test_local_lb_failover, which ./scripts/test runs
alone: its timings are what a user feels). It is destroyed once the package's tests are
done.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.environments import LOCAL_PAIR_ENV, LOCAL_PAIR_PORT, provisioned_environment


@dataclass(frozen=True)
class ProvisionedEnvironment:
    directory: Path
    summary: dict  # provision's --json summary (endpoint, ca_file, ...)


@pytest.fixture(scope="package")
def local_pair(platform, tmp_path_factory) -> Iterator[ProvisionedEnvironment]:
    overrides = {
        "load_balancer": {"publish_port": LOCAL_PAIR_PORT},
    }
    root = tmp_path_factory.mktemp("inventories")
    with provisioned_environment(root, LOCAL_PAIR_ENV, overrides, packaged_hosts=True) as made:
        yield ProvisionedEnvironment(*made)
