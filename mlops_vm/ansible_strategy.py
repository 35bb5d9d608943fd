"""The Ansible strategy of the CLI's playbook runs: linear, or Mitogen's on request.

Mitogen keeps one Python interpreter per host for the whole run and sends modules over it,
instead of a new interpreter (and module upload) per task; the pinned mitogen
(pyproject.toml) has the code paths of ansible-core 2.19 and 2.20. Measured here (README
"Benchmark"): a no-change provision of 2 VMs in 47 s instead of 119 s.

It is opt-in (MLOPS_VM_MITOGEN=1) because its SSH transport does not keep the project's
host-key policy: it puts its own StrictHostKeyChecking (and, when Ansible's host key
checking is off, UserKnownHostsFile=/dev/null) before the inventory's ssh arguments, so the
per-environment known_hosts with accept-new (mlops_vm/inventory.py) is not what decides; a
static host was reached without its key being recorded (tests/e2e/test_static_ssh.py).
A run with ANSIBLE_STRATEGY set keeps that strategy.
"""

from collections.abc import Mapping
from pathlib import Path

OPT_IN = "MLOPS_VM_MITOGEN"


def strategy_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Environment variables that select Mitogen, when ENVIRON asks for it and chooses no
    strategy of its own."""
    if environ.get("ANSIBLE_STRATEGY") or environ.get(OPT_IN) != "1":
        return {}
    import ansible_mitogen

    plugins = Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"
    return {"ANSIBLE_STRATEGY_PLUGINS": str(plugins), "ANSIBLE_STRATEGY": "mitogen_linear"}
