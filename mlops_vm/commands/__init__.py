"""The commands behind `mlops-vm`, one module per verb group: run.py (provision, destroy),
release.py (deploy, rollback), status.py, logs.py, validate.py. They share one path to load
and check an environment (checks.py) and one to run a playbook and report it (playbook.py,
report.py); cli.py only wires them to typer.

Each command returns its exit code (exits.py); a command stopped early raises `Stop` after
printing why.
"""
