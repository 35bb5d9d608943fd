"""The environment layer: the schema of an environment (config.py), how it is loaded and
checked (load.py, sizing.py), and its translations into what the layers below take: the
providers' specs (specs.py), a managed target's spec (service_spec.py), the boot-time
configuration (boot_config.py), Ansible's host variables (inventory.py) and the edge's
settings (edge.py).

It imports the layers below it (provision, services, release, bootstrap) for their types,
never the command layers above it.
"""
