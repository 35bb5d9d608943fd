"""Local environments shared by end-to-end modules, provisioned once for all of them.

`local_pair`: 2 model VMs x 1 replica behind the local load balancer, for the modules that
only need such an environment serving (test_local_lb_failover, then test_release): a fresh
provision and destroy cost about two minutes on 2 cores. Each module leaves both hosts
serving; the environment is destroyed once the package's tests are done.
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
        # test_release's bad releases give up after a minute instead of the default.
        "release": {"ready_timeout_s": 60},
    }
    root = tmp_path_factory.mktemp("inventories")
    with provisioned_environment(root, LOCAL_PAIR_ENV, overrides, packaged_hosts=True) as made:
        yield ProvisionedEnvironment(*made)
