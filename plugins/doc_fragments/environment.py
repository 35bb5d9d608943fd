"""The options and notes every mlops_vm module shares (module_utils/mlops_vm_common.py)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  config:
    description: The environment's C(mlops_vm) variable, secrets removed.
    type: dict
    required: true
  inventory_dir:
    description: The environment's inventory directory (relative paths start there).
    type: path
    required: true
notes:
  - Supports check mode.
  - Runs on the controller, with the Python that has the mlops_vm package installed.
requirements:
  - the mlops_vm Python package (C(pip install mlops-vm)) in the controller's Python
"""
