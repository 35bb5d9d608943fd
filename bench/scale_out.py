"""Benchmark of the local scaling group: a load step, and one instance's launch baked
against a cold boot.

    .venv/bin/python bench/scale_out.py [--json] [--name asgbench] [--port 18572]

1. provisions a scaling-group environment (min 1 / max 3, 20 requests/s per instance, the
   autoscaler's window 10 s and cooldowns of seconds), which bakes its release image;
2. a load step through the endpoint: 5 requests/s, then 60 requests/s (as offered: what the
   machine answers is reported), then 5 again: the time from the step to the first new
   instance serving (healthy in HAProxy), to the full group, every failed request, and the
   instance count over time until the group is back to one;
3. one instance launched from the baked image against one cold-booting from the user-data
   (mlops_vm.bootstrap: cloud-init installs Ansible from a wheel mirror and applies the
   roles), each timed from `docker run` to healthy behind the load balancer;
4. destroys the environment.
"""

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

import yaml  # noqa: E402

from bench.local_cloud import make_environment, mlops_vm  # noqa: E402
from mlops_vm import paths  # noqa: E402
from mlops_vm.bootstrap import BootConfig, render_user_data  # noqa: E402
from mlops_vm.localcloud import pki, registry  # noqa: E402
from mlops_vm.localcloud.docker_cli import docker  # noqa: E402
from mlops_vm.localcloud.images import VM_IMAGE  # noqa: E402
from mlops_vm.localcloud.vm import remove_vm, run_vm  # noqa: E402
from mlops_vm.provision.local import group  # noqa: E402
from mlops_vm.provision.local import resources as res  # noqa: E402
from mlops_vm.provision.model import ROLE_MODEL  # noqa: E402
from tests.load import RequestLoop  # noqa: E402

PORT = 18593
AUTOSCALER = {
    "window_s": 10,
    "interval_s": 1,
    "scale_out_cooldown_s": 5,
    "scale_in_cooldown_s": 20,
    "drain_s": 15,
}


def scaling_environment(root: Path, name: str, port: int) -> Path:
    directory = make_environment(root, name, 1, port)
    settings_file = directory / "group_vars" / "all" / "mlops_vm.yml"
    settings = yaml.safe_load(settings_file.read_text())
    settings["mlops_vm"]["provider"]["options"] = {"autoscaler": AUTOSCALER}
    settings["mlops_vm"]["fleet"] = {
        "mode": "scaling_group",
        "count": 1,
        "autoscaling": {
            "min_size": 1,
            "max_size": 3,
            "target_requests_per_instance": 20,
            "target_cpu_percent": None,
        },
    }
    settings_file.write_text(yaml.safe_dump(settings))
    return directory


def serving(env: str) -> int:
    state = group.read_state(env)
    return sum(state.lifecycle.get(c.name) == "in_service" for c in group.instances(env))


def load_step(env: str, endpoint: str, ca_file: str) -> dict:
    """5 -> 60 -> 5 requests/s; the group's size every second."""
    timeline: list[tuple[float, int, int]] = []
    stop = threading.Event()
    origin = time.monotonic()

    def sample() -> None:
        while not stop.is_set():
            timeline.append(
                (round(time.monotonic() - origin, 1), serving(env), len(group.instances(env)))
            )
            stop.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    with RequestLoop(endpoint, ca_file, threads=1, interval_s=0.2) as base:
        sampler.start()
        base.wait_requests(25)
        step_at = time.monotonic()
        with RequestLoop(endpoint, ca_file, threads=11, interval_s=0.2) as step:
            first = wait_until(lambda: serving(env) >= 2, 300) - step_at
            full = wait_until(lambda: serving(env) >= 3, 300) - step_at
            step.wait_requests(300, timeout_s=120)
        step_s = time.monotonic() - step_at
        back = wait_until(lambda: len(group.instances(env)) == 1, 300) - step_at
        stop.set()
        sampler.join()
    offered = [o for o in step.outcomes]
    return {
        "step_requests_per_s": round(len(offered) / step_s, 1),
        "step_to_first_new_instance_serving_s": round(first, 1),
        "step_to_three_serving_s": round(full, 1),
        "step_end_to_one_instance_s": round(back - step_s, 1),
        "requests": len(base.outcomes) + len(step.outcomes),
        "failed_requests": len(base.failures()) + len(step.failures()),
        "instances_over_time": [
            {"t_s": t, "serving": s, "instances": n}
            for i, (t, s, n) in enumerate(timeline)
            if i == 0 or timeline[i - 1][1:] != (s, n)
        ],
    }


def wait_until(predicate, timeout_s: float) -> float:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout_s}s")
        time.sleep(0.2)
    return time.monotonic()


def behind_lb(env: str, name: str, index: int, args: str | None) -> float:
    """Join NAME at its fixed address; seconds until HAProxy reports it healthy."""
    lb = group.lb_host(env)
    address = res.fixed_address(env, ROLE_MODEL, index)
    group.join(lb, name, address, 120.0, args=args)
    return time.monotonic()


def leave(env: str, name: str) -> None:
    lb = group.lb_host(env)
    group.drain(lb, name, 5.0)
    remove_vm(name)


def timed(started: float, healthz: float, joined: float | None) -> dict:
    result = {"launch_to_healthz_s": round(healthz - started, 1)}
    if joined is not None:
        result["launch_to_serving_through_lb_s"] = round(joined - started, 1)
    return result


def baked_launch(env: str, config: group.GroupConfig, *, join: bool) -> dict:
    index = group.free_indexes(env, 1)[0]
    name = res.vm_name(env, ROLE_MODEL, index)
    try:
        started = time.monotonic()
        group.launch(config, index, member=False)
        healthz = time.monotonic()
        joined = behind_lb(env, name, index, None) if join else None
    finally:
        leave(env, name) if join else remove_vm(name)
    return timed(started, healthz, joined)


def wheel_mirror(network: str) -> str:
    wheels = paths.CACHE_DIR / "ansible-wheels"
    wheels = sorted(p for p in wheels.iterdir() if (p / ".complete").exists())[-1]
    name = f"mlops-vm-bench-wheels-{uuid.uuid4().hex[:6]}"
    docker(
        "run", "-d", "--name", name, "--network", network,
        "--volume", f"{wheels}:/srv/wheels:ro", "--entrypoint", "python3", VM_IMAGE,
        "-m", "http.server", "8000", "--directory", "/srv/wheels",
    )  # fmt: skip
    return name


def cold_launch(env: str, seed_root: Path, *, join: bool) -> dict:
    """A VM of the environment booting from user-data, as a scaling group's would without
    a baked image (tests/bootstrap/test_boot_vm.py's way: NoCloud seed, wheel mirror)."""
    network = res.network_name(env)
    mirror = wheel_mirror(network)
    creds = registry.ensure_credentials()
    boot = BootConfig.for_model(
        registry.model_image_ref("1.0"),
        registry_username=creds.username,
        registry_password=creds.password,
        registry_ca_cert=pki.ca_pair().cert.read_text(),
        replicas=1,
        pip_find_links=f"http://{mirror}:8000/",
    )
    index = group.free_indexes(env, 1)[0]
    name = res.vm_name(env, "cold", index)
    seed = seed_root / "nocloud"
    seed.mkdir(parents=True)
    (seed / "user-data").write_text(render_user_data(boot))
    (seed / "meta-data").write_text(f"instance-id: iid-{name}\nlocal-hostname: {name}\n")
    seed.chmod(0o755)
    try:
        started = time.monotonic()
        run_vm(
            name,
            network=network,
            labels=res.labels(env, "cold"),
            address=res.fixed_address(env, ROLE_MODEL, index),
            extra_args=("--volume", f"{seed}:/var/lib/cloud/seed/nocloud:ro"),
        )
        group.wait_serving(name, 1800)
        healthz = time.monotonic()
        # Its Nginx certificate comes from a CA made on the VM itself: not verified.
        args = "check inter 1s fall 2 rise 2 ssl verify none"
        joined = behind_lb(env, name, index, args) if join else None
        return timed(started, healthz, joined)
    finally:
        leave(env, name) if join else remove_vm(name)
        docker("rm", "-f", mirror, check=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--name", default="asgbench")
    parser.add_argument("--port", type=int, default=PORT)
    parser.add_argument("--skip-cold", action="store_true", help="no cold boot (minutes)")
    parser.add_argument(
        "--launch-only",
        metavar="IMAGE",
        help="only the launch of one instance, baked (from IMAGE, a release image of the "
        "environment --name, whose network exists) against a cold boot, to /healthz",
    )
    args = parser.parse_args()
    if args.launch_only:
        with tempfile.TemporaryDirectory() as work:
            config = group.GroupConfig(args.name, args.launch_only, "", health_timeout_s=1800)
            result = {
                "baked": baked_launch(args.name, config, join=False),
                "cold_boot": cold_launch(args.name, Path(work) / "seed", join=False),
            }
        result["baked_to_cold_ratio"] = round(
            result["baked"]["launch_to_healthz_s"] / result["cold_boot"]["launch_to_healthz_s"], 2
        )
        print(json.dumps(result, indent=2) if args.json else result)
        return
    with tempfile.TemporaryDirectory() as work:
        directory = scaling_environment(Path(work), args.name, args.port)
        mlops_vm("destroy", str(directory), "--yes")
        try:
            started = time.monotonic()
            summary = mlops_vm("provision", str(directory))
            result = {"provision_with_bake_s": round(time.monotonic() - started, 1)}
            wait_until(lambda: serving(args.name) == 1, 120)
            result["load_step"] = load_step(args.name, summary["endpoint"], summary["ca_file"])
            config = group.read_config(args.name)
            result["baked"] = baked_launch(args.name, config, join=True)
            if not args.skip_cold:
                result["cold_boot"] = cold_launch(args.name, Path(work) / "seed", join=True)
                result["baked_to_cold_ratio"] = round(
                    result["baked"]["launch_to_serving_through_lb_s"]
                    / result["cold_boot"]["launch_to_serving_through_lb_s"],
                    2,
                )
        finally:
            mlops_vm("destroy", str(directory), "--yes")
    print(json.dumps(result, indent=2) if args.json else result)


if __name__ == "__main__":
    main()
