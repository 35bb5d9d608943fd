"""The CLI's start imports no cloud SDK: a command on a local or VM environment (every
`deploy`) never uses boto3, the Google or the Azure clients, and importing them cost
~0.5 s of each command's start (issue 26). Only a provider, a managed target or an S3
ledger that an environment names imports its SDK, when it is used."""

import json
import subprocess
import sys

from mlops_vm import paths

SDKS = ("boto3", "botocore", "googleapiclient", "google.auth", "azure")


def test_importing_the_cli_and_loading_settings_imports_no_cloud_sdk():
    probe = (
        "import json, sys; import mlops_vm.cli; "
        "from mlops_vm.commands import history, lock, playbook; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({SDKS!r}))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=paths.PROJECT_DIR,
    )
    assert json.loads(done.stdout) == []
