"""A release's machine image on the local cloud: a configured VM container, committed.

The builder is a VM container on the environment's network. The controller applies the
boot payload's roles and variables to it (the same ones a cold-booting instance applies to
itself from its user-data, mlops_vm.bootstrap) over the docker connection, so the image
holds the Docker engine, Nginx, the non-secret settings and the model image, pulled.

A VM keeps /var/lib/docker on a volume, which `docker commit` does not capture; the
engine's whole state (the model image and the replica containers the roles made) is packed
into the image as one tar file that a boot unit unpacks into the new instance's empty
volume before the engine starts. Chosen over `docker save` / `docker load` of the model image
because the replica containers the roles made come back with it (a load would leave them
to be made again, by Ansible); the two were not timed side by side
(bench/scale_out.py times this one against a cold boot).

Nothing secret stays in the image: the registry login is removed (instances never pull:
the model is in the image), and the API keys file is moved out of the builder into the
environment's secret store stand-in on the controller (secrets.py), from where the
autoscaler hands it to each instance at launch. The builder is removed in every case.
"""

import base64
import json
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from mlops_vm import paths
from mlops_vm.bootstrap.payload import read_payload
from mlops_vm.localcloud import images
from mlops_vm.localcloud.docker_cli import docker
from mlops_vm.localcloud.vm import remove_vm, run_vm, wait_booted
from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.local import resources as res
from mlops_vm.provision.local import secrets
from mlops_vm.provision.model import TAG_ENV, FleetSpec, ImageResult, ImageSpec

REPOSITORY = "mlops-vm/release"
FINGERPRINT_LABEL = "mlops-vm/fingerprint"
RELEASE_LABEL = "mlops-vm/release"
BAKED_AT_LABEL = "mlops-vm/baked-at"
DOCKER_STATE = "/var/lib/mlops-vm/docker-state.tar"
RESTORE_UNIT = "mlops-vm-restore-docker.service"
# Unpacks the baked engine state into the instance's (empty) Docker volume, once.
RESTORE_UNIT_TEXT = f"""[Unit]
Description=Restore the baked Docker engine state (model image and replicas)
Before=docker.service docker.socket
ConditionPathExists={DOCKER_STATE}
ConditionPathExists=!/var/lib/docker/.mlops-vm-restored

[Service]
Type=oneshot
ExecStart=/bin/tar --xattrs --xattrs-include=* -xpf {DOCKER_STATE} -C /var/lib/docker
ExecStart=/bin/touch /var/lib/docker/.mlops-vm-restored

[Install]
RequiredBy=docker.service
"""


def tag(env: str, fingerprint: str) -> str:
    return f"{REPOSITORY}:{env}-{fingerprint[:16]}"


def builder_name(env: str) -> str:
    return f"mlops-vm-{env}-builder"


def env_images(env: str) -> list[dict[str, str]]:
    """ENV's baked images, newest first: {tag, fingerprint, release, baked_at}."""
    lines = docker(
        "image",
        "ls",
        "--filter",
        f"label={TAG_ENV}={env}",
        "--filter",
        f"label={FINGERPRINT_LABEL}",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ).split()
    found = []
    for name in lines:
        labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", name))
        found.append(
            {
                "tag": name,
                "fingerprint": labels.get(FINGERPRINT_LABEL, ""),
                "release": labels.get(RELEASE_LABEL, ""),
                "baked_at": labels.get(BAKED_AT_LABEL, ""),
            }
        )
    return sorted(found, key=lambda image: image["baked_at"], reverse=True)


def boot_files(user_data: str) -> dict[str, bytes]:
    """The payload's files (site.yml, vars.yml, secrets.yml, roles/...) out of the user-data."""
    document = yaml.safe_load(user_data)
    encoded = "".join(document["write_files"][0]["content"].split())
    return {name: data for name, (_, data) in read_payload(base64.b85decode(encoded)).items()}


def configure(builder: str, env: str, user_data: str) -> None:
    """Apply the payload's roles and variables to BUILDER from this machine."""
    files = boot_files(user_data)
    roles = [
        role["role"] if isinstance(role, dict) else role
        for role in yaml.safe_load(files["site.yml"])[0]["roles"]
    ]
    play = [
        {"name": "Bake a release image", "hosts": builder, "gather_facts": True, "roles": roles}
    ]
    with tempfile.TemporaryDirectory(prefix="mlops-vm-bake-") as work:
        directory = Path(work)
        (directory / "bake.yml").write_text(yaml.safe_dump(play))
        extra = ["-e", f"@{directory / 'vars.yml'}"]
        (directory / "vars.yml").write_bytes(files["vars.yml"])
        if "secrets.yml" in files:
            (directory / "secrets.yml").write_bytes(files["secrets.yml"])
            (directory / "secrets.yml").chmod(0o600)
            extra += ["-e", f"@{directory / 'secrets.yml'}"]
        # The environment's CA (the playbooks' mlops_vm_ca_dir), made on the controller:
        # the LB host verifies the instances' certificates against it.
        ca_dir = paths.STATE_DIR / "envs" / env / "pki"
        proc = subprocess.run(
            [
                "ansible-playbook",
                "-i",
                f"{builder},",
                "-c",
                "community.docker.docker",
                "-e",
                "ansible_python_interpreter=/usr/bin/python3",
                *extra,
                "-e",
                f"nginx_proxy_ca_dir={ca_dir}",
                str(directory / "bake.yml"),
            ],
            cwd=paths.PROJECT_DIR,
            # Ansible refuses a non-blocking stdin, and needs none.
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        raise ProvisionError(
            ErrorCode.INTERNAL,
            f"the roles failed on the image builder {builder}: {proc.stdout[-3000:]}",
            hint="the builder is removed; run `mlops-vm provision` again after fixing the cause",
            provider="local",
            operation="bake image",
        )


def seal(builder: str, env: str) -> None:
    """Take the secrets out, pack the engine's state into the image, install the boot unit."""
    keys = docker(
        "exec", builder, "sh", "-c", "cat /etc/nginx/api-keys.conf 2>/dev/null", check=False
    )
    secrets.store_api_keys_file(env, keys)
    script = f"""set -eu
if [ -e /etc/nginx/api-keys.conf ]; then
  grep -v '" 1;$' /etc/nginx/api-keys.conf > /etc/nginx/api-keys.conf.new
  mv /etc/nginx/api-keys.conf.new /etc/nginx/api-keys.conf
fi
rm -rf /root/.docker /var/lib/cloud /opt/mlops-vm/boot
systemctl stop docker.socket docker.service containerd.service
mkdir -p {Path(DOCKER_STATE).parent}
# Exit 1 is "a file changed while read" (the engine's last writes): not an error here.
tar --xattrs --xattrs-include='*' --warning=no-file-changed -cpf {DOCKER_STATE} \
  -C /var/lib/docker . || [ $? -eq 1 ]
cat > /etc/systemd/system/{RESTORE_UNIT} <<'EOF'
{RESTORE_UNIT_TEXT}EOF
systemctl enable {RESTORE_UNIT}
"""
    docker("exec", builder, "sh", "-c", script)


def bake(fleet: FleetSpec, image: ImageSpec) -> str:
    """The image for IMAGE, made from a builder that is removed whatever happens."""
    if not fleet.instance.user_data:
        raise ProvisionError(
            ErrorCode.INVALID_INPUT,
            "no boot configuration (user-data) to bake the release image from",
            hint="scaling-group fleets get it from the environment (boot_config)",
            provider="local",
            operation="bake image",
        )
    builder = builder_name(image.env)
    remove_vm(builder)  # a leftover of an interrupted bake
    try:
        res.attach_registry(image.env)
        run_vm(
            builder,
            network=res.network_name(image.env),
            labels=res.labels(image.env, "builder"),
            image=fleet.instance.image or images.VM_IMAGE,
        )
        wait_booted(builder)
        configure(builder, image.env, fleet.instance.user_data)
        seal(builder, image.env)
        name = tag(image.env, image.fingerprint)
        changes = [
            f"LABEL {TAG_ENV}={image.env}",
            f"LABEL {FINGERPRINT_LABEL}={image.fingerprint}",
            f"LABEL {RELEASE_LABEL}={image.release}",
            f"LABEL {BAKED_AT_LABEL}={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
        ]
        docker(
            "commit", *[arg for change in changes for arg in ("--change", change)], builder, name
        )
        return name
    finally:
        remove_vm(builder)


def ensure_release_image(
    fleet: FleetSpec, image: ImageSpec, *, dry_run: bool = False
) -> tuple[ImageResult, list[Change]]:
    """LocalProvider.ensure_release_image: reuse by fingerprint, else bake; keep_images."""
    log = ChangeLog(dry_run=dry_run)
    existing = env_images(image.env)
    same = [found for found in existing if found["fingerprint"] == image.fingerprint]
    name = tag(image.env, image.fingerprint)
    if same:
        result = ImageResult(image_id=same[0]["tag"], name=same[0]["tag"], reused=True)
    else:
        log.create("image", name, lambda: bake(fleet, image), f"release {image.release}")
        result = ImageResult(image_id=name, name=name, reused=False)
    kept = {result.image_id} | {found["tag"] for found in existing[: max(image.keep_images - 1, 0)]}
    for old in existing:
        in_use = docker("ps", "-aq", "--filter", f"ancestor={old['tag']}")
        if old["tag"] not in kept and not in_use:
            # An image an instance still runs stays: it goes on a later run.
            log.delete("image", old["tag"], lambda t=old["tag"]: docker("rmi", t, check=False))
    return result, log.changes
