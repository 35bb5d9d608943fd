"""The payload an instance unpacks at boot: roles, playbook, variables and the run script.

It is made reproducibly (sorted entries, no times or owners), so the same BootConfig
always renders the same user-data and a launch template only gets a new
version when something really changed. The roles are embedded without what only people
read (YAML comments, argument descriptions, READMEs, Molecule scenarios): the parsed
YAML is identical, which is what keeps a 16 KB user-data limit within reach.
"""

import ast
import lzma
import re
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from mlops_vm.bootstrap.config import BootConfig

BOOT_DIR = "/opt/mlops-vm/boot"
VENV_DIR = "/opt/mlops-vm/ansible"
DONE_MARKER = "/var/lib/mlops-vm/boot-done"
SKIPPED_DIRS = frozenset({"molecule", "tests", ".git", "__pycache__", "docs"})
SKIPPED_SUFFIXES = (".md", ".rst", ".pyc")


def gpu(variables: Mapping[str, Any]) -> bool:
    return bool(variables.get("docker_engine_nvidia_enabled"))


# Task files the roles include only for some settings, carried only for those: every
# byte counts in EC2's 16 KB. File -> whether the boot's variables need it.
CONDITIONAL_FILES: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "docker_engine/tasks/nvidia-Debian.yml": gpu,
    "docker_engine/tasks/apt-repository-Debian.yml": lambda variables: (
        gpu(variables) or variables.get("docker_engine_source") == "docker"
    ),
    "tls_certificate/tasks/provided.yml": lambda variables: (
        variables.get("nginx_proxy_tls_mode") == "provided"
    ),
}


def unneeded_files(variables: Mapping[str, Any]) -> frozenset[str]:
    """The CONDITIONAL_FILES that VARIABLES do not need."""
    return frozenset(name for name, needed in CONDITIONAL_FILES.items() if not needed(variables))


# Keys of a role's meta files that running the role never reads: descriptions for people,
# and an argument spec's defaults (ansible-core validates against the spec but takes the
# role's variables from defaults/main.yml).
UNREAD_META_KEYS = frozenset(
    {"description", "short_description", "author", "galaxy_tags", "default"}
)
# Variables the boot path sets unless the caller does: no "~" (cloud-init may run
# without HOME), and the nginx CA kept where an operator finds it.
BOOT_DEFAULTS: dict[str, Any] = {"nginx_proxy_ca_dir": "/etc/mlops-vm/nginx-ca"}

# LZMA2 tuned for text (literal context bits up, position bits down).
XZ_FILTERS = [
    {"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "lc": 4, "lp": 0, "pb": 0}
]

PLAYBOOK = [
    {
        "name": "Configure this instance as a model server",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": True,
        "roles": [],
    }
]


class BlockDumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks (shorter than quoted escapes)."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and not value.endswith((" ", "\t")) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


class LiteralText(str):
    """A string always written as a literal block (kept byte for byte, never folded)."""


def _represent_literal(dumper: yaml.SafeDumper, value: "LiteralText") -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")


class UnsafeText(str):
    """A string Ansible must not template (a password may contain "{{")."""


def _represent_unsafe(dumper: yaml.SafeDumper, value: "UnsafeText") -> yaml.ScalarNode:
    return dumper.represent_scalar("!unsafe", str(value), style="'")


BlockDumper.add_representer(str, _represent_str)
BlockDumper.add_representer(UnsafeText, _represent_unsafe)
BlockDumper.add_representer(LiteralText, _represent_literal)


def unsafe(data: Any) -> Any:
    if isinstance(data, str):
        return UnsafeText(data)
    if isinstance(data, dict):
        return {key: unsafe(value) for key, value in data.items()}
    if isinstance(data, list):
        return [unsafe(item) for item in data]
    return data


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=BlockDumper, sort_keys=False, width=4096, default_flow_style=None)


def strip_unread_keys(data: Any) -> Any:
    """A meta file (argument spec, galaxy info) without the keys running the role never
    reads (UNREAD_META_KEYS)."""
    if isinstance(data, dict):
        return {
            key: strip_unread_keys(value)
            for key, value in data.items()
            if key not in UNREAD_META_KEYS
        }
    if isinstance(data, list):
        return [strip_unread_keys(item) for item in data]
    return data


def minify_yaml(text: str, *, meta: bool) -> str:
    """TEXT re-dumped without comments (and, for a META file, without UNREAD_META_KEYS);
    unchanged when it does not parse as plain YAML (custom tags, templates)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if data is None:
        return text
    if meta:
        data = strip_unread_keys(data)
    return dump_yaml(data)


JINJA_COMMENT = re.compile(r"^\s*\{#.*#\}\s*$")


def without_comment_lines(text: str) -> str:
    """TEXT without its whole-line comments (`# ...` and Jinja's `{# ... #}`), the shebang
    kept: templates and scripts mean the same without them, and user-data is small."""
    lines = text.splitlines(keepends=True)
    kept = [
        line
        for number, line in enumerate(lines)
        if not (line.lstrip().startswith("#") and not (number == 0 and line.startswith("#!")))
        and not JINJA_COMMENT.match(line)
    ]
    return "".join(kept)


def without_docstrings(source: str) -> str:
    """A Python script's code without comments and docstrings (its shebang kept)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body[:1] = [ast.Pass()] if len(body) == 1 else []
    shebang = source.splitlines()[0] + "\n" if source.startswith("#!") else ""
    return shebang + ast.unparse(tree) + "\n"


def script_for_boot(text: str) -> str:
    """A template or a script, smaller and with the same meaning."""
    if text.startswith("#!") and "python" in text.splitlines()[0]:
        return without_docstrings(text)
    return without_comment_lines(text)


def role_files(
    roles_dir: Path, role: str, skipped: frozenset[str] = frozenset()
) -> list[tuple[str, bytes]]:
    """(archive path, content) of ROLE's files that an instance needs (not SKIPPED)."""
    root = roles_dir / role
    if not (root / "tasks").is_dir():
        raise FileNotFoundError(f"role {role} has no tasks in {root}")
    files = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(roles_dir)
        if not path.is_file() or SKIPPED_DIRS & set(relative.parts):
            continue
        if path.name.endswith(SKIPPED_SUFFIXES) or relative.as_posix() in skipped:
            continue
        content = path.read_bytes()
        if path.suffix in (".yml", ".yaml") and "templates" not in relative.parts:
            content = minify_yaml(content.decode(), meta=relative.parts[1] == "meta").encode()
        elif relative.parts[1] in ("templates", "files", "library"):
            content = script_for_boot(content.decode()).encode()
        files.append((f"roles/{relative.as_posix()}", content))
    return files


INCLUDE_ROLE_KEYS = ("ansible.builtin.include_role", "include_role", "ansible.builtin.import_role")


def included_roles(roles_dir: Path, role: str) -> set[str]:
    """Roles ROLE's tasks include (nginx_proxy includes tls_certificate, ...)."""
    found = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in INCLUDE_ROLE_KEYS and isinstance(value, dict) and "name" in value:
                    found.add(value["name"])
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in sorted((roles_dir / role / "tasks").glob("*.yml")):
        walk(yaml.safe_load(path.read_text()))
    return found


def embedded_roles(roles_dir: Path, roles: tuple[str, ...]) -> list[str]:
    """ROLES and every role they include, transitively, each once, in a stable order."""
    wanted, queue = list(roles), list(roles)
    while queue:
        for name in sorted(included_roles(roles_dir, queue.pop(0)) - set(wanted)):
            wanted.append(name)
            queue.append(name)
    return wanted


def playbook(boot: BootConfig) -> str:
    plays = [dict(play, roles=list(boot.roles)) for play in PLAYBOOK]
    return dump_yaml(plays)


def variables(boot: BootConfig) -> dict[str, Any]:
    return {**BOOT_DEFAULTS, **boot.role_vars}


def pip_source_options(boot: BootConfig) -> str:
    """pip's options for where the wheels come from (PyPI when nothing is set)."""
    url = boot.pip_find_links or boot.pip_index_url
    if not url:
        return ""
    if boot.pip_find_links:
        options = f"--no-index --find-links {shlex.quote(url)}"
    else:
        options = f"--index-url {shlex.quote(url)}"
    parsed = urlparse(url)
    if parsed.scheme == "http" and parsed.hostname:
        # pip ignores plain-HTTP sources unless told the host is trusted (a mirror on
        # the private network).
        options += f" --trusted-host {shlex.quote(parsed.hostname)}"
    return options


def run_script(boot: BootConfig) -> str:
    """The script that installs Ansible and applies the roles to this very machine."""
    secrets = f"-e @{BOOT_DIR}/secrets.yml" if boot.secret_vars or boot.secrets_at_boot else ""
    if boot.ansible_install == "pip":
        pip_source = pip_source_options(boot)
        install = f"""apt_install python3-venv
python3 -m venv {VENV_DIR}
{VENV_DIR}/bin/pip install --quiet --no-input --disable-pip-version-check {pip_source} \\
  "ansible-core=={boot.ansible_core_version}" "ansible=={boot.ansible_version}"
PLAYBOOK={VENV_DIR}/bin/ansible-playbook"""
    else:
        install = """apt_install ansible
PLAYBOOK=ansible-playbook"""
    trust = ""
    if boot.extra_ca_certs:
        trust = f"""cp {BOOT_DIR}/ca/*.crt /usr/local/share/ca-certificates/
update-ca-certificates
export PIP_CERT=/etc/ssl/certs/ca-certificates.crt
"""
    return f"""#!/bin/sh
# mlops-vm first boot: install Ansible, apply the roles locally, forget the secrets.
set -eu
umask 077
export HOME="${{HOME:-/root}}" DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
export ANSIBLE_ROLES_PATH={BOOT_DIR}/roles ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0
export ANSIBLE_LOCALHOST_WARNING=0 ANSIBLE_INVENTORY_UNPARSED_WARNING=0
cleanup() {{ rm -f {BOOT_DIR}/secrets.yml; }}
trap cleanup EXIT
apt_install() {{
  for attempt in 1 2 3 4 5; do
    apt-get update -q && apt-get install -y -q --no-install-recommends "$@" && return 0
    sleep $((attempt * 10))
  done
  return 1
}}
{trust}{install}
"$PLAYBOOK" -i localhost, -c local {BOOT_DIR}/site.yml -e @{BOOT_DIR}/vars.yml {secrets}
mkdir -p "$(dirname {DONE_MARKER})" && touch {DONE_MARKER}
"""


def entries(boot: BootConfig) -> list[tuple[str, bytes, int]]:
    """(path under BOOT_DIR, content, mode) of every file of the payload."""
    files: list[tuple[str, bytes, int]] = [
        ("run.sh", run_script(boot).encode(), 0o700),
        ("site.yml", playbook(boot).encode(), 0o600),
        ("vars.yml", dump_yaml(variables(boot)).encode(), 0o600),
    ]
    if boot.secret_vars:
        secrets = dump_yaml(unsafe(dict(boot.secret_vars)))
        files.append(("secrets.yml", secrets.encode(), 0o600))
    for index, pem in enumerate(boot.extra_ca_certs):
        files.append((f"ca/extra-{index}.crt", pem.strip().encode() + b"\n", 0o644))
    skipped = unneeded_files({**boot.role_vars, **boot.secret_vars})
    for role in embedded_roles(boot.roles_dir, boot.roles):
        files += [(name, data, 0o644) for name, data in role_files(boot.roles_dir, role, skipped)]
    return files


def build_payload(boot: BootConfig) -> bytes:
    """The payload, compressed: the same bytes for the same BootConfig.

    Not a tar file: its 512-byte headers cost more than the roles' largest file once
    compressed. Each entry is a line "<octal mode> <size> <path>" and SIZE bytes.
    """
    stream = b"".join(
        f"{mode:o} {len(data)} {name}\n".encode() + data for name, data, mode in entries(boot)
    )
    return lzma.compress(stream, format=lzma.FORMAT_XZ, filters=XZ_FILTERS)


def read_payload(blob: bytes) -> dict[str, tuple[int, bytes]]:
    """{path: (mode, content)} of a payload (what the instance's unpacker does)."""
    stream = lzma.decompress(blob)
    files: dict[str, tuple[int, bytes]] = {}
    offset = 0
    while offset < len(stream):
        end = stream.index(b"\n", offset)
        mode, size, name = stream[offset:end].decode().split(" ", 2)
        start = end + 1
        files[name] = (int(mode, 8), stream[start : start + int(size)])
        offset = start + int(size)
    return files
