#!/usr/bin/python
"""Ansible module, run on a model host: a model replica's container (re)created and started in
one call, as community.docker.docker_container did it with `recreate: true, state: started,
container_default_behavior: no_defaults`, at a fraction of the cost (three Engine API calls,
no docker SDK, no big import), then waited for until ready (the role's readiness helper), in
the same round trip: it is on the path of every swap of a release.

It talks to the Docker Engine API over its UNIX socket with the standard library only (the
hosts have python3, not the docker SDK), through the role's module_utils/mlops_vm_engine_api.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: mlops_vm_replica_start
short_description: Recreate and start a model replica's container on a Docker host
description:
  - Removes the container I(name) if there is one (forced, running or not), creates it anew
    with the settings given and starts it, in one call on the host; what
    C(community.docker.docker_container) does with C(recreate=true), C(state=started) and
    C(container_default_behavior=no_defaults), with the same option formats.
  - An option that is not given is not sent to the engine, which keeps its own default.
  - Always changed (the container is always recreated). In check mode the options are checked
    and nothing is done.
  - A setting the engine refuses (a memory limit below its minimum, an unknown log driver, a
    port already taken, a missing image) fails the module with the engine's message. The
    values of O(env) never appear in a result, an error or a log.
  - With O(ready_command), the command then runs on the host (the role's readiness helper)
    and its exit code and output are returned; it does not fail the module (the caller
    decides). Start and wait are one round trip, which a release waits for on every host.
options:
  start:
    description:
      - Whether to (re)create and start the container; C(false) only runs O(ready_command)
        (a successor already started, e.g. staged by a release's pre-flight).
    type: bool
    default: true
  remove:
    description:
      - Containers removed (forced) before the start, e.g. what an interrupted swap left;
        nothing is removed without O(start).
    type: list
    elements: str
    default: []
  ready_command:
    description:
      - A command (argv) run on the host once the container is started, e.g. the wait until
        it is ready; its exit code and output are returned as RV(ready_rc) and
        RV(ready_output). Not run in check mode (RV(ready_rc) is then 0).
    type: list
    elements: str
    default: []
  name:
    description: The container's name.
    type: str
    required: true
  image:
    description: The image to run (C(repository:tag) or C(repository@digest)), already on the host.
    type: str
    required: true
  restart_policy:
    description: The container's restart policy.
    type: str
    choices: ["no", on-failure, always, unless-stopped]
  published_ports:
    description:
      - Ports published on the host, as C(ip:hostport:containerport), C(hostport:containerport)
        or C(containerport), each with an optional C(/tcp), C(/udp) or C(/sctp); an IPv6
        address in brackets. A published port is exposed too.
    type: list
    elements: str
  env:
    description: Environment variables (string values); they may be secrets, and are never shown.
    type: dict
  volumes:
    description:
      - Bind mounts as C(src:dst) or C(src:dst:mode) (C(ro), C(rw), ...), and anonymous volumes
        as C(dst).
    type: list
    elements: str
  cpus:
    description: CPUs the container may use (C(1.5) is one and a half).
    type: float
  memory:
    description:
      - Memory limit as C(<number>[<unit>]), unit B, K, M, G, T or P (powers of 1024, C(512m),
        C(2g)); bytes without a unit.
    type: str
  memory_swap:
    description: Memory plus swap limit, like O(memory), or C(unlimited) (C(-1)).
    type: str
  device_requests:
    description: Devices (GPUs) to ask the engine for.
    type: list
    elements: dict
    suboptions:
      driver:
        description: The device driver (C(nvidia)).
        type: str
      count:
        description: How many devices; C(-1) for all of them.
        type: int
      device_ids:
        description: The devices by id or index.
        type: list
        elements: str
      capabilities:
        description: Capabilities as a list of lists (C([[gpu]])); any one inner list must match.
        type: list
        elements: list
      options:
        description: Driver-specific options.
        type: dict
  healthcheck:
    description:
      - The container's health check, as docker_container takes it; without O(healthcheck.test),
        the image's health check is turned off (unless O(healthcheck.test_cli_compatible)).
    type: dict
    suboptions:
      test:
        description: The command, as a list (C([CMD, ...]), C([CMD-SHELL, ...]), C([NONE])) or a
          shell command string (run as C(CMD-SHELL)).
        type: raw
      test_cli_compatible:
        description: Without O(healthcheck.test), keep the image's test (as the docker CLI does)
          instead of turning the health check off.
        type: bool
      interval:
        description: Time between checks, like C(30s) or C(1m30s) (units us, ms, s, m, h).
        type: str
      timeout:
        description: Time a check may take, like O(healthcheck.interval).
        type: str
      start_period:
        description: Time a container gets to start before failed checks count.
        type: str
      start_interval:
        description: Time between checks during the start period.
        type: str
      retries:
        description: Failed checks in a row that make the container unhealthy.
        type: int
  log_driver:
    description: The logging driver (C(json-file), C(local), C(journald), ...).
    type: str
  log_options:
    description: The logging driver's options; values are passed as strings.
    type: dict
  stop_timeout:
    description: Seconds the container gets to stop after its stop signal before it is killed.
    type: int
  labels:
    description: The container's labels (string values).
    type: dict
  docker_socket:
    description: The Docker Engine's UNIX socket.
    type: path
    default: /var/run/docker.sock
  timeout:
    description: Seconds a call to the engine may wait for an answer.
    type: int
    default: 60
"""

EXAMPLES = r"""
- name: Start the successor of model-0
  mlops_vm_replica_start:
    name: model-0-next
    image: registry.example.com:5443/team/iris-classifier:1.1
    restart_policy: always
    published_ports:
      - 127.0.0.1:9081:8080
    env:
      PORT: "8080"
      API_TOKEN: "{{ vault_api_token }}"
    volumes:
      - /etc/mlops-vm/model/secrets/token:/run/secrets/token:ro
    cpus: 1.0
    memory: 1g
    memory_swap: 1g
    healthcheck:
      test: [CMD, curl, -fsS, http://127.0.0.1:8080/healthz]
      interval: 15s
      timeout: 5s
      retries: 3
      start_period: 30s
    log_driver: json-file
    log_options:
      max-size: 10m
      max-file: 3
    stop_timeout: 30
    labels:
      mlops-vm.model-service: model
"""

RETURN = r"""
container_id:
  description: The Id of the container created and started.
  type: str
  returned: success, when started, not in check mode
  sample: 4c5a9f0e2b7d...
ready_rc:
  description: The exit code of O(ready_command) (0 without one, and in check mode).
  type: int
  returned: success
ready_output:
  description:
    - The output of O(ready_command) (why it is not ready), the env values of 6 characters
      or more masked.
  type: str
  returned: success
"""

import json
import os
import re
from urllib.parse import quote, urlencode

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.formatters import human_to_bytes

try:  # the role's module_utils (the checkout, Molecule, the boot payload)
    from ansible.module_utils import mlops_vm_engine_api as engine_api
except ImportError:  # from the built collection
    from ansible_collections.mlops_vm.deploy.plugins.module_utils import (
        mlops_vm_engine_api as engine_api,
    )

EngineError = engine_api.EngineError
message_of = engine_api.message_of

MASK = "********"
# As the CLI's run folder scrubs them (mlops_vm/runner.py): shorter values are settings.
SECRET_MIN_LENGTH = 6
VOLUME_MODES = re.compile(r"^(ro|rw|z|Z|nocopy|[rs]?(shared|slave|private)|rbind|bind)(,|$)")
IPV4 = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$")
IPV6_IN_BRACKETS = re.compile(r"^\[([0-9a-fA-F:]+(?:%[^\]/]+)?)\]$")
# docker_container's duration format (convert_duration_to_nanosecond).
DURATION = re.compile(
    r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m(?!s))?(?:(?P<s>\d+)s)?(?:(?P<ms>\d+)ms)?(?:(?P<us>\d+)us)?$"
)
NANOSECONDS = {"h": 3600 * 10**9, "m": 60 * 10**9, "s": 10**9, "ms": 10**6, "us": 10**3}


class OptionError(ValueError):
    """An option the module cannot turn into an Engine API setting."""


class Engine(engine_api.Engine):
    """The three Engine API calls of a (re)start, one connection per call."""

    def remove(self, name: str) -> bool:
        """Remove the container NAME, running or not; whether there was one."""
        status, body = self.request("DELETE", f"/containers/{quote(name, safe='')}?force=true")
        if status not in (204, 404):
            raise EngineError(message_of(body))
        return status == 204

    def create(self, name: str, settings: dict) -> tuple[str, list[str]]:
        """The new container's Id and the engine's warnings."""
        status, body = self.request(
            "POST", "/containers/create?" + urlencode({"name": name}), body=settings
        )
        if status != 201:
            raise EngineError(message_of(body))
        created = json.loads(body)
        return created["Id"], created.get("Warnings") or []

    def start(self, container_id: str) -> None:
        status, body = self.request("POST", f"/containers/{container_id}/start")
        if status not in (204, 304):
            raise EngineError(message_of(body))


def nanoseconds(duration: object, option: str) -> int:
    if not isinstance(duration, str) or not duration or not DURATION.match(duration):
        raise OptionError(
            f"healthcheck.{option}: {duration!r} is not a duration like 30s, 1m30s or 500ms"
        )
    parts = DURATION.match(duration).groupdict()
    return sum(int(value) * NANOSECONDS[unit] for unit, value in parts.items() if value)


def size_in_bytes(size: str, option: str, unlimited: bool = False) -> int:
    if unlimited and size in ("unlimited", "-1"):
        return -1
    try:
        return human_to_bytes(size)
    except ValueError as error:
        raise OptionError(
            f"{option}: cannot read {size!r} as a size (like 512m or 2g): {error}"
        ) from None


def split_port(text: str) -> list[str]:
    """TEXT split at its colons, an IPv6 address in brackets kept whole."""
    if "[" not in text:
        return text.split(":")
    host, bracket, rest = text.partition("]")
    if not bracket or not host.startswith("["):
        raise OptionError(f"published_ports: {text!r}: an IPv6 address goes in brackets, first")
    return [host + "]", *rest.lstrip(":").split(":")]


def port_settings(published: list[str]) -> tuple[dict, dict]:
    """(ExposedPorts, PortBindings) of the published ports."""
    exposed, bindings = {}, {}
    for entry in published:
        parts = split_port(entry)
        container_port, _, protocol = parts[-1].partition("/")
        if not container_port.isdigit():
            raise OptionError(
                f"published_ports: {entry!r}: the container port must be a number "
                "(ip:hostport:containerport[/protocol]; ranges are not supported)"
            )
        if len(parts) > 3:
            raise OptionError(
                f"published_ports: {entry!r}: expected 1 to 3 colon-separated parts "
                "(an IPv6 address goes in brackets)"
            )
        host_ip, host_port = ("", "") if len(parts) == 1 else ("", parts[0])
        if len(parts) == 3:
            host_ip, host_port = parts[0], parts[1]
            in_brackets = IPV6_IN_BRACKETS.match(host_ip)
            if not IPV4.match(host_ip) and not in_brackets:
                raise OptionError(
                    f"published_ports: {entry!r}: the bind address must be an IPv4 or IPv6 "
                    "address, not a host name"
                )
            host_ip = in_brackets.group(1) if in_brackets else host_ip
        if host_port and not host_port.isdigit():
            raise OptionError(f"published_ports: {entry!r}: the host port must be a number")
        key = f"{container_port}/{protocol or 'tcp'}"
        exposed[key] = {}
        bindings.setdefault(key, []).append({"HostIp": host_ip, "HostPort": host_port})
    return exposed, bindings


def volume_settings(volumes: list[str]) -> tuple[list[str], dict]:
    """(Binds, Volumes): host paths bound, and anonymous volumes."""
    binds, anonymous = [], {}
    for volume in volumes:
        parts = volume.split(":")
        if len(parts) == 1:
            anonymous[volume] = {}
            continue
        if len(parts) > 3 or (len(parts) == 3 and not VOLUME_MODES.match(parts[2])):
            raise OptionError(f"volumes: {volume!r} is not src:dst or src:dst:mode (ro, rw, ...)")
        source = parts[0]
        if re.match(r"[.~]", source):  # relative to the module's directory, as docker_container
            source = os.path.abspath(os.path.expanduser(source))
        binds.append(":".join([source, parts[1], parts[2] if len(parts) == 3 else "rw"]))
    return binds, anonymous


def healthcheck_settings(healthcheck: dict) -> dict:
    """The Engine API's Healthcheck; without a test, the image's one turned off (or kept, as
    the docker CLI does, with test_cli_compatible)."""
    test = healthcheck.get("test")
    if not test and not (healthcheck.get("test_cli_compatible") and test is None):
        return {"Test": ["NONE"]}
    settings = {}
    if test:
        is_list = isinstance(test, list)
        settings["Test"] = [str(part) for part in test] if is_list else ["CMD-SHELL", str(test)]
    for option, key in (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start_period", "StartPeriod"),
        ("start_interval", "StartInterval"),
    ):
        if healthcheck.get(option) is not None:
            settings[key] = nanoseconds(healthcheck[option], option)
    if healthcheck.get("retries") is not None:
        settings["Retries"] = healthcheck["retries"]
    return settings


def device_request_settings(requests: list[dict]) -> list[dict]:
    keys = (
        ("driver", "Driver"),
        ("count", "Count"),
        ("device_ids", "DeviceIDs"),
        ("capabilities", "Capabilities"),
        ("options", "Options"),
    )
    return [
        {key: request[option] for option, key in keys if request.get(option) is not None}
        for request in requests
    ]


def strings(values: dict, option: str) -> dict:
    """VALUES, each a string (as docker_container wants them: 1 and true are ambiguous)."""
    for key, value in values.items():
        if not isinstance(value, str):
            raise OptionError(
                f"{option}: the value of {key} is not a string; quote it (a YAML 1, true "
                "or 1.0 is ambiguous)"
            )
    return values


def container_settings(module: AnsibleModule) -> dict:
    """The body of POST /containers/create: only the options given (no_defaults)."""
    params = module.params
    config: dict = {"Image": params["image"]}
    host: dict = {}
    if params["env"] is not None:
        env = strings(params["env"], "env")
        config["Env"] = [f"{key}={value}" for key, value in env.items()]
    if params["labels"] is not None:
        config["Labels"] = strings(params["labels"], "labels")
    if params["stop_timeout"] is not None:
        config["StopTimeout"] = params["stop_timeout"]
    if params["healthcheck"] is not None:
        config["Healthcheck"] = healthcheck_settings(params["healthcheck"])
    if params["published_ports"] is not None:
        config["ExposedPorts"], host["PortBindings"] = port_settings(params["published_ports"])
    if params["volumes"] is not None:
        host["Binds"], anonymous = volume_settings(params["volumes"])
        if anonymous:
            config["Volumes"] = anonymous
    if params["restart_policy"] is not None:
        host["RestartPolicy"] = {"Name": params["restart_policy"]}
    if params["cpus"] is not None:
        host["NanoCpus"] = round(params["cpus"] * 1e9)
    if params["memory"] is not None:
        host["Memory"] = size_in_bytes(params["memory"], "memory")
    if params["memory_swap"] is not None:
        host["MemorySwap"] = size_in_bytes(params["memory_swap"], "memory_swap", unlimited=True)
    if params["device_requests"] is not None:
        host["DeviceRequests"] = device_request_settings(params["device_requests"])
    if params["log_driver"] is not None:
        options = params["log_options"] or {}
        for key, value in options.items():
            if not isinstance(value, str):
                module.warn(f"log_options: the value of {key} is passed as the string {value!s}.")
        host["LogConfig"] = {
            "Type": params["log_driver"],
            "Config": {key: str(value) for key, value in options.items()},
        }
    config["HostConfig"] = host
    return config


def redacted(text: str, secrets: list[str]) -> str:
    """TEXT with every secret masked, the longest first (one may contain another)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def finish(module: AnsibleModule, failed: bool = False, **result) -> None:
    """Exit with RESULT, the env values masked by the module itself.

    Ansible masks every occurrence of a no_log value anywhere in a result, even inside other
    words: a short env value ("1", "8080") would garble the container Id and every message.
    The only places env values could reach are the invocation (masked here by name) and the
    engine's messages (masked by the caller with redacted()), so Ansible's own masking of
    them is turned off."""
    env = module.params["env"] or {}
    module.no_log_values.difference_update(str(value) for value in env.values())
    arguments = dict(module.params)
    if module.params["env"] is not None:
        arguments["env"] = dict.fromkeys(env, "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER")
    result["invocation"] = {"module_args": arguments}
    if failed:
        module.fail_json(**result)
    module.exit_json(**result)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "image": {"type": "str", "required": True},
            "restart_policy": {
                "type": "str",
                "choices": ["no", "on-failure", "always", "unless-stopped"],
            },
            "published_ports": {"type": "list", "elements": "str"},
            "env": {"type": "dict", "no_log": True},
            "volumes": {"type": "list", "elements": "str"},
            "cpus": {"type": "float"},
            "memory": {"type": "str"},
            "memory_swap": {"type": "str"},
            "device_requests": {
                "type": "list",
                "elements": "dict",
                "options": {
                    "driver": {"type": "str"},
                    "count": {"type": "int"},
                    "device_ids": {"type": "list", "elements": "str"},
                    "capabilities": {"type": "list", "elements": "list"},
                    "options": {"type": "dict"},
                },
            },
            "healthcheck": {
                "type": "dict",
                "options": {
                    "test": {"type": "raw"},
                    "test_cli_compatible": {"type": "bool"},
                    "interval": {"type": "str"},
                    "timeout": {"type": "str"},
                    "start_period": {"type": "str"},
                    "start_interval": {"type": "str"},
                    "retries": {"type": "int"},
                },
            },
            "log_driver": {"type": "str"},
            "log_options": {"type": "dict"},
            "stop_timeout": {"type": "int"},
            "labels": {"type": "dict"},
            "start": {"type": "bool", "default": True},
            "remove": {"type": "list", "elements": "str", "default": []},
            "ready_command": {"type": "list", "elements": "str", "default": []},
            "docker_socket": {"type": "path", "default": "/var/run/docker.sock"},
            "timeout": {"type": "int", "default": 60},
        },
        required_by={"log_options": "log_driver"},
        supports_check_mode=True,
    )
    params = module.params
    name = params["name"]
    secrets = [str(value) for value in (params["env"] or {}).values() if str(value)]
    try:
        settings = container_settings(module)
    except OptionError as error:
        finish(module, failed=True, msg=f"Cannot start {name}: {error}")
    if module.check_mode:
        finish(module, changed=params["start"], ready_rc=0, ready_output="")

    started = start(module, name, settings, secrets) if params["start"] else {}
    rc, output = 0, ""
    if params["ready_command"]:
        rc, output, _ = module.run_command(params["ready_command"])
    # The container's log lines may repeat an env value: masked, but only the values long
    # enough to be secrets (a "1" or "8080" would garble the URL and the figures of why).
    long_values = [secret for secret in secrets if len(secret) >= SECRET_MIN_LENGTH]
    finish(
        module,
        changed=bool(started),
        ready_rc=rc,
        ready_output=redacted(output, long_values),
        **started,
    )


def start(module: AnsibleModule, name: str, settings: dict, secrets: list[str]) -> dict:
    """Remove what is in the way, (re)create NAME and start it; the container's Id."""
    params = module.params
    engine = Engine(params["docker_socket"], params["timeout"])
    # Whether the host changed before a call failed (a removed or created container).
    changed = False
    try:
        for leftover in params["remove"]:
            changed = engine.remove(leftover) or changed
        changed = engine.remove(name) or changed
        container_id, warnings = engine.create(name, settings)
        changed = True
        engine.start(container_id)
    except EngineError as error:
        finish(
            module,
            failed=True,
            changed=changed,
            msg=f"Cannot start {name} from {params['image']}: {redacted(str(error), secrets)}",
        )
    except OSError as error:
        finish(
            module,
            failed=True,
            changed=changed,
            msg=f"Cannot talk to the Docker engine at {params['docker_socket']}: {error}",
        )
    for warning in warnings:
        module.warn(redacted(f"Docker engine: {warning}", secrets))
    return {"container_id": container_id}


if __name__ == "__main__":
    main()
