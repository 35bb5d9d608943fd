"""The haproxy_lb role's configuration module (roles/haproxy_lb/library/
mlops_vm_haproxy_config): what it decides to do to a running HAProxy. A change of servers
only is made through the runtime API, servers added before any goes; anything else is a
reload; servers the configuration never listed (added at run time by an autoscaler) are
left alone. The runtime calls themselves run against a real HAProxy in the haproxy_lb
Molecule scenario and the local provider's scale-in test."""

import importlib.util

from mlops_vm import paths

MODULE = paths.PROJECT_DIR / "roles" / "haproxy_lb" / "library" / "mlops_vm_haproxy_config.py"
spec = importlib.util.spec_from_file_location("mlops_vm_haproxy_config", MODULE)
haproxy_config = importlib.util.module_from_spec(spec)
spec.loader.exec_module(haproxy_config)
plan = haproxy_config.plan

DEFAULTS = "check inter 1s fall 2 rise 2 ssl verify required ca-file /etc/haproxy/ca.crt"


def config(*servers: str, timeout: str = "60s", other_backend: str = "") -> str:
    lines = [
        "global",
        "    maxconn 4096",
        "defaults",
        f"    timeout server {timeout}",
        "backend model_service",
        "    balance roundrobin",
        f"    default-server {DEFAULTS}",
        *(f"    server {server}" for server in servers),
        "backend other",
        f"    server spare 10.0.0.9:443{other_backend}",
        "",
    ]
    return "\n".join(lines)


TWO = config("m-1 10.0.0.1:443", "m-2 10.0.0.2:443")
LIVE_TWO = {"m-1": "10.0.0.1:443", "m-2": "10.0.0.2:443"}


def test_the_same_configuration_needs_nothing():
    assert plan(TWO, TWO, "model_service", LIVE_TWO) == ("none", [])


def test_without_a_record_of_what_runs_it_reloads():
    assert plan(None, TWO, "model_service", {}) == ("reload", [])


def test_a_change_outside_the_servers_reloads():
    changed = config("m-1 10.0.0.1:443", "m-2 10.0.0.2:443", timeout="30s")
    assert plan(TWO, changed, "model_service", LIVE_TWO) == ("reload", [])


def test_a_server_of_another_backend_is_not_changed_at_run_time():
    changed = config("m-1 10.0.0.1:443", "m-2 10.0.0.2:443", other_backend=" backup")
    assert plan(TWO, changed, "model_service", LIVE_TWO) == ("reload", [])


def test_a_server_that_goes_is_deleted_at_run_time():
    one = config("m-1 10.0.0.1:443")
    assert plan(TWO, one, "model_service", LIVE_TWO) == (
        "servers",
        [("delete", "m-2", "10.0.0.2:443", [])],
    )


def test_a_new_server_is_added_with_the_default_server_options_before_any_goes():
    changed = config("m-1 10.0.0.1:443", "m-3 10.0.0.3:443 weight 50")
    how, steps = plan(TWO, changed, "model_service", LIVE_TWO)
    assert how == "servers"
    assert steps == [
        ("add", "m-3", "10.0.0.3:443", [*DEFAULTS.split(), "weight", "50"]),
        ("delete", "m-2", "10.0.0.2:443", []),
    ]


def test_a_server_whose_address_changed_goes_then_comes_back():
    moved = config("m-1 10.0.0.1:443", "m-2 10.0.0.7:443")
    assert plan(TWO, moved, "model_service", LIVE_TWO) == (
        "servers",
        [
            ("delete", "m-2", "10.0.0.2:443", []),
            ("add", "m-2", "10.0.0.7:443", DEFAULTS.split()),
        ],
    )


def test_servers_added_at_run_time_by_others_stay():
    live = {**LIVE_TWO, "group-7": "10.0.0.8:443"}
    one = config("m-1 10.0.0.1:443")
    assert plan(TWO, one, "model_service", live) == (
        "servers",
        [("delete", "m-2", "10.0.0.2:443", [])],
    )


def test_what_already_runs_is_not_done_twice():
    # m-2 already deleted, m-3 already added (a run that failed after the runtime calls).
    changed = config("m-1 10.0.0.1:443", "m-3 10.0.0.3:443")
    live = {"m-1": "10.0.0.1:443", "m-3": "10.0.0.3:443"}
    assert plan(TWO, changed, "model_service", live) == ("none", [])
