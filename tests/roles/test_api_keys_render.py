"""The API keys of nginx_proxy, rendered by Ansible itself from the role's own defaults,
vars and templates: a baked image's Nginx (nginx_proxy_api_keys_at_boot, no key known)
requires a key and its keys file accepts none, and the file the boot hook writes at boot
(fetch_script.api_keys_conf) is the one the role renders with the keys (regex_escape
and all)."""

import json
from pathlib import Path

import pytest
import yaml

from mlops_vm import paths
from mlops_vm.bootstrap.fetch_script import api_keys_conf
from tests.ansible_cli import render_locally

NGINX = paths.PROJECT_DIR / "roles" / "nginx_proxy"
KEYS = ["render-key-one-0123456789", "render.key~two+/=-9876543210"]


def render_playbook(out: Path) -> list[dict]:
    def render(name: str, template: str, variables: dict) -> list[dict]:
        # set_fact: above the included defaults (task vars are below include_vars).
        return [
            {"ansible.builtin.set_fact": {"nginx_proxy_api_keys_at_boot": False, **variables}},
            {
                "ansible.builtin.template": {
                    "src": str(NGINX / "templates" / template),
                    "dest": f"{out}/{name}",
                    "mode": "0644",
                }
            },
        ]

    baked = {"nginx_proxy_api_keys": [], "nginx_proxy_api_keys_at_boot": True}
    return [
        {
            "name": "Render the API keys settings of nginx_proxy",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": True,
            "tasks": [
                *(
                    {"ansible.builtin.include_vars": str(path)}
                    for path in (
                        NGINX / "defaults" / "main.yml",
                        NGINX / "vars" / "main.yml",
                        NGINX / "vars" / "Debian.yml",
                    )
                ),
                *render("baked-nginx.conf", "nginx.conf.j2", baked),
                *render("baked-api-keys.conf", "api-keys.conf.j2", baked),
                *render("open-nginx.conf", "nginx.conf.j2", {"nginx_proxy_api_keys": []}),
                *render("keyed-api-keys.conf", "api-keys.conf.j2", {"nginx_proxy_api_keys": KEYS}),
            ],
        }
    ]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("api-keys-render")
    playbook = out / "render.yml"
    playbook.write_text(yaml.safe_dump(render_playbook(out)))
    # The controller-side facts the template reads, as on a real host.
    proc = render_locally(playbook, json.dumps({"nginx_proxy_metrics_host_label": "h1"}))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return out


def entries(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_a_baked_nginx_requires_a_key_and_accepts_none_until_boot(rendered):
    conf = (rendered / "baked-nginx.conf").read_text()
    assert "include /etc/nginx/api-keys.conf;" in conf
    assert "if ($nginx_proxy_api_key_ok = 0)" in conf
    keys = entries((rendered / "baked-api-keys.conf").read_text())
    assert not [line for line in keys if line.endswith('" 1;')]  # no key accepted
    # Without either setting, no key is asked for (the role's behaviour as before).
    assert "api-keys.conf" not in (rendered / "open-nginx.conf").read_text()


def test_the_hook_writes_the_keys_file_the_role_renders(rendered):
    role = (rendered / "keyed-api-keys.conf").read_text()
    assert entries(api_keys_conf(KEYS, "X-API-Key")) == entries(role)
