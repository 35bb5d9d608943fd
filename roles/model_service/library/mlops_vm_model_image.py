#!/usr/bin/python
"""Ansible module, run on a model host: the model image pulled, the service's containers
listed and the release record read, in one round trip (the pre-flight of a release waits for
every one it makes).

It talks to the Docker Engine API over its UNIX socket with the standard library only (the
hosts have python3, not the docker SDK), through the role's module_utils/mlops_vm_engine_api.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: mlops_vm_model_image
short_description: Pull a model image and list the service's containers on a Docker host
description:
  - Pulls the image per the pull policy, returns its image Id, and lists the containers
    that carry the service's label, in the Docker Engine API's shape (C(Names), C(State),
    C(Labels), ...), and reads the release record the host keeps (O(record_file)), all in
    one call on the host.
  - Registry credentials go with the pull itself (the Engine API's X-Registry-Auth
    header), only to the registry of the image; nothing is stored on the host, so no
    login outlives the run and an image made from the host carries none. A registry that
    refuses them fails the module with a message naming the registry and the user.
  - In check mode nothing is pulled; the image Id is the one of the image already on the
    host (empty when there is none).
options:
  image:
    description: The image's repository, without tag or digest.
    type: str
    required: true
  tag:
    description: The tag to pull; ignored when O(digest) is given.
    type: str
    default: latest
  digest:
    description: A digest (C(sha256:...)) to pull instead of the tag; it never moves, so it is
      pulled only when not present.
    type: str
    default: ""
  pull:
    description:
      - C(always) asks the registry every time (a moved tag is picked up; an unchanged image
        changes nothing); C(not_present) never contacts the registry once the image is there.
    type: str
    choices: [always, not_present]
    default: always
  registry:
    description: The registry the credentials are for (C(host[:port]); empty for none).
    type: str
    default: ""
  username:
    description: The registry user.
    type: str
    default: ""
  password:
    description: The registry password or token (never logged, never stored on the host).
    type: str
    default: ""
  containers_label:
    description: List the containers (also stopped ones) with this label, as C(key=value).
    type: str
    required: true
  record_file:
    description:
      - The JSON file in which the host records the release it runs (read, never written);
        empty for none. Also read in check mode.
    type: path
    default: ""
  docker_socket:
    description: The Docker Engine's UNIX socket.
    type: path
    default: /var/run/docker.sock
  timeout:
    description: Seconds a call to the engine (a pull included) may wait for an answer.
    type: int
    default: 600
"""

EXAMPLES = r"""
- name: Pull the model image
  mlops_vm_model_image:
    image: registry.example.com:5443/team/iris-classifier
    tag: "1.1"
    registry: registry.example.com:5443
    username: deploy
    password: "{{ vault_registry_password }}"
    containers_label: mlops-vm.model-service=model
    record_file: /etc/mlops-vm/model/release.json
  register: pulled
"""

RETURN = r"""
image_id:
  description: The image's Id on the host after the pull (in check mode, before; empty when absent).
  type: str
  returned: success
  sample: sha256:0f3e1d...
pulled:
  description: Whether the registry was asked for the image (not in check mode).
  type: bool
  returned: success
containers:
  description: The containers with the label, running or not, as the Engine API lists them.
  type: list
  elements: dict
  returned: success
record:
  description: The content of O(record_file), parsed; null when there is no such file.
  type: dict
  returned: success
"""

import base64
import json
from urllib.parse import quote, urlencode

from ansible.module_utils.basic import AnsibleModule

try:  # the role's module_utils (the checkout, Molecule, the boot payload)
    from ansible.module_utils import mlops_vm_engine_api as engine_api
except ImportError:  # from the built collection
    from ansible_collections.mlops_vm.deploy.plugins.module_utils import (
        mlops_vm_engine_api as engine_api,
    )

EngineError = engine_api.EngineError
message_of = engine_api.message_of

DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}
# How a registry says no to the credentials (distribution, Docker Hub, cloud registries).
REFUSED_LOGIN_MARKERS = ("unauthorized", "authentication required", "no basic auth credentials")


class Engine(engine_api.Engine):
    """The few Engine API calls the module makes, one connection per call."""

    def image_id(self, reference: str) -> str:
        """The Id of the image on the host, "" when there is none."""
        status, body = self.request("GET", f"/images/{quote(reference, safe='')}/json")
        if status == 404:
            return ""
        if status != 200:
            raise EngineError(message_of(body))
        return json.loads(body)["Id"]

    def pull(self, repository: str, tag_or_digest: str, auth: str) -> None:
        """Pull, and fail with the engine's error; the answer is a stream of progress lines
        whose last one carries the error, if any (the status is 200 once the pull started)."""
        query = urlencode({"fromImage": repository, "tag": tag_or_digest})
        headers = {"X-Registry-Auth": auth} if auth else {}
        status, body = self.request("POST", f"/images/create?{query}", headers)
        if status != 200:
            raise EngineError(message_of(body))
        for line in body.decode(errors="replace").splitlines():
            if line.strip():
                progress = json.loads(line)
                if "error" in progress:
                    raise EngineError(progress["error"])

    def containers(self, label: str) -> list[dict]:
        filters = json.dumps({"label": [label]})
        status, body = self.request(
            "GET", "/containers/json?" + urlencode({"all": "1", "filters": filters})
        )
        if status != 200:
            raise EngineError(message_of(body))
        return json.loads(body)


def registry_of(repository: str) -> str:
    """The registry host of an image repository (Docker Hub when it names none)."""
    first, _, rest = repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return normalized_registry(first)
    return DOCKER_HUB


def normalized_registry(registry: str) -> str:
    host = registry.split("://", 1)[-1].split("/", 1)[0].lower()
    return DOCKER_HUB if host in DOCKER_HUB_ALIASES else host


def registry_auth(registry: str, username: str, password: str) -> str:
    """The X-Registry-Auth header's value (base64url JSON, as the docker CLI sends it)."""
    credentials = {"username": username, "password": password, "serveraddress": registry}
    return base64.urlsafe_b64encode(json.dumps(credentials).encode()).decode()


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "image": {"type": "str", "required": True},
            "tag": {"type": "str", "default": "latest"},
            "digest": {"type": "str", "default": ""},
            "pull": {"type": "str", "choices": ["always", "not_present"], "default": "always"},
            "registry": {"type": "str", "default": ""},
            "username": {"type": "str", "default": ""},
            "password": {"type": "str", "default": "", "no_log": True},
            "containers_label": {"type": "str", "required": True},
            "record_file": {"type": "path", "default": ""},
            "docker_socket": {"type": "path", "default": "/var/run/docker.sock"},
            "timeout": {"type": "int", "default": 600},
        },
        supports_check_mode=True,
    )
    params = module.params
    repository = params["image"]
    tag_or_digest = params["digest"] or params["tag"]
    reference = (
        f"{repository}@{params['digest']}" if params["digest"] else f"{repository}:{params['tag']}"
    )
    # A digest names one image for good: once it is there, there is nothing to ask.
    policy = "not_present" if params["digest"] else params["pull"]
    registry = normalized_registry(params["registry"]) if params["registry"] else ""
    # Credentials only ever go to the registry they are for.
    auth = (
        registry_auth(params["registry"], params["username"], params["password"])
        if registry and registry == registry_of(repository)
        else ""
    )
    engine = Engine(params["docker_socket"], params["timeout"])

    try:
        before = engine.image_id(reference)
        pulling = not module.check_mode and (policy == "always" or not before)
        if pulling:
            engine.pull(repository, tag_or_digest, auth)
        image_id = engine.image_id(reference) if pulling else before
        containers = engine.containers(params["containers_label"])
    except EngineError as error:
        module.fail_json(msg=failure(str(error), reference, bool(auth), params))
    except OSError as error:
        module.fail_json(
            msg=f"Cannot talk to the Docker engine at {params['docker_socket']}: {error}"
        )

    if pulling and not image_id:
        module.fail_json(msg=f"The pull of {reference} left no image on the host.")
    record = read_record(module, params["record_file"])
    module.exit_json(
        # In check mode: a pull would bring an image that is not there.
        changed=(image_id != before) if pulling else (module.check_mode and not before),
        image_id=image_id,
        pulled=pulling,
        containers=containers,
        record=record,
    )


def read_record(module: AnsibleModule, path: str) -> dict | None:
    """The release record at PATH, None when there is none; one that is not JSON fails."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as record:
            return json.load(record)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        module.fail_json(msg=f"Cannot read the release record {path}: {error}")


def failure(error: str, reference: str, logged_in: bool, params: dict) -> str:
    """What failed, in words a person can act on; the password never in it."""
    if params["password"]:
        error = error.replace(params["password"], "********")
    if logged_in and any(marker in error.lower() for marker in REFUSED_LOGIN_MARKERS):
        return (
            f"The registry {params['registry']} refused the login of {params['username']!r} "
            f"to pull {reference}: {error}"
        )
    return f"Cannot pull {reference}: {error}"


if __name__ == "__main__":
    main()
