"""The Ansible strategy of the CLI's playbook runs: Mitogen's linear strategy.

Mitogen keeps one Python interpreter per host for the whole run and sends modules over it,
instead of a new interpreter (and module upload) per task. The pinned mitogen (pyproject.toml)
supports the pinned ansible-core: its ansible_mitogen has the code paths of ansible-core
2.19 and 2.20 and no upper bound. Measured here (README "Benchmark"): a no-change provision
of 2 VMs in 47 s instead of 119 s. Plays and roles are the same under both strategies;
a run with ANSIBLE_STRATEGY set (`ANSIBLE_STRATEGY=linear mlops-vm ...`) keeps that one.
"""

from collections.abc import Mapping
from pathlib import Path


def strategy_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Environment variables that select Mitogen, unless ENVIRON chooses a strategy."""
    if environ.get("ANSIBLE_STRATEGY"):
        return {}
    import ansible_mitogen

    plugins = Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"
    return {"ANSIBLE_STRATEGY_PLUGINS": str(plugins), "ANSIBLE_STRATEGY": "mitogen_linear"}
