"""A stand-in for the part of ECS that moto does not have: its scheduler. moto records
services and deployments but never starts a task nor advances a deployment.

This stand-in watches moto's services (in this process: the moto server is threaded) and
runs each new deployment's task definition, read back through the ECS API, on the local
Docker engine with exactly that definition's container settings: the image (pulled from
the registry that stands in for ECR, where push_image copied it), the port, the
environment, the secrets (resolved from moto's Secrets Manager / SSM, as the ECS agent
does), the health check command, interval, timeout, retries and start period, and the
task's CPU and memory limits. Then it does what ECS does with the outcome:
- the container reports healthy: the deployment completes, the old task stops;
- the container exits or turns unhealthy: the deployment circuit breaker rolls the
  service back to the revision it ran, with an event that says why.
The control plane stays moto's; only the deployment state is written here.
InstantScheduler, below, is the same scheduler with no task to run (every deployment
completes at once, or fails), for the tests whose subject is not the container.
"""

import contextlib
import threading
import time
import uuid
from typing import Any

import boto3
import docker

from mlops_vm.provision.model import TAG_ENV
from mlops_vm.services.ecs.names import CONTAINER

ACCOUNT = "123456789012"  # moto's default account
TASK_START_TIMEOUT_S = 180.0


def deployment(arn: str, state: str, desired: int, reason: str = "") -> dict[str, Any]:
    from moto.core.utils import utcnow

    return {
        "id": f"ecs-svc/{uuid.uuid4().int % 10**16}",
        "status": "PRIMARY",
        "taskDefinition": arn,
        "desiredCount": desired,
        "runningCount": desired if state == "COMPLETED" else 0,
        "pendingCount": 0,
        "failedTasks": 1 if state == "FAILED" else 0,
        "rolloutState": state,
        "rolloutStateReason": reason or f"ECS deployment {state.lower()}.",
        "launchType": "FARGATE",
        "createdAt": utcnow(),
        "updatedAt": utcnow(),
    }


class FargateStandIn:
    def __init__(
        self, endpoint: str, region: str, registry_endpoint: str, auth: dict[str, str]
    ) -> None:
        self.region = region
        self.registry_endpoint = registry_endpoint
        self.auth = auth
        self.clients = {
            name: boto3.client(name, region_name=region, endpoint_url=endpoint)
            for name in ("ecs", "secretsmanager", "ssm", "logs")
        }
        self.docker = docker.from_env()
        # (service arn, task definition arn) -> (container, started at)
        self.tasks: dict[tuple[str, str], tuple[Any, float]] = {}
        self.failures: list[str] = []
        self.shipped: dict[str, int] = {}  # container id -> log lines shipped
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="fargate-stand-in", daemon=True)

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> "FargateStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for container, _ in self.tasks.values():
            self._remove(container)
        self.tasks.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as error:  # keep scheduling; the test sees the failure list
                self.failures.append(repr(error))
            self._stop.wait(0.5)

    # -- what ECS's scheduler does ---------------------------------------------------------

    def services(self) -> list[Any]:
        from moto.ecs.models import ecs_backends

        return list(ecs_backends[ACCOUNT][self.region].services.values())

    def step(self) -> None:
        services = self.services()
        gone = {arn for arn, _ in self.tasks} - {service.arn for service in services}
        for arn in gone:  # deleted with its cluster before we saw it inactive
            self._stop_tasks(arn, keep=None)
        for service in services:
            if service.status != "ACTIVE":
                self._stop_tasks(service.arn, keep=None)
                continue
            wanted = service.task_definition
            primary = service.deployments[0] if service.deployments else {}
            if primary.get("taskDefinition") == wanted and primary.get("rolloutState") in (
                "COMPLETED",
                "FAILED",
            ):
                continue
            key = (service.arn, wanted)
            if key not in self.tasks:
                # UpdateService starts a new PRIMARY deployment; the old one stays ACTIVE.
                if primary and primary.get("taskDefinition") != wanted:
                    rolling = deployment(wanted, "IN_PROGRESS", service.desired_count)
                    service.deployments = [rolling, {**primary, "status": "ACTIVE"}]
                self.tasks[key] = (self.launch(service, wanted), time.monotonic())
                continue
            container, started = self.tasks[key]
            container.reload()
            self.ship_logs(container, wanted)
            health = container.attrs["State"].get("Health", {}).get("Status")
            if health == "healthy":
                service.deployments = [deployment(wanted, "COMPLETED", service.desired_count)]
                service.running_count = service.desired_count
                self._stop_tasks(service.arn, keep=wanted)
            elif (
                container.status == "exited"
                or health == "unhealthy"
                or time.monotonic() - started > TASK_START_TIMEOUT_S
            ):
                self._circuit_breaker(service, wanted, self._why(container))

    def _circuit_breaker(self, service: Any, failed: str, why: str) -> None:
        reason = f"ECS deployment circuit breaker: tasks failed to start ({why})"
        running = [d for d in service.deployments if d.get("taskDefinition") != failed]
        previous = running[0]["taskDefinition"] if running else None
        self._stop_tasks(service.arn, keep=previous)
        if previous and previous != failed:
            service.task_definition = previous
            service.deployments = [deployment(previous, "COMPLETED", service.desired_count)]
            message = f"(service {service.name}) rolling back to {previous}: {reason}"
        else:
            service.deployments = [deployment(failed, "FAILED", service.desired_count, reason)]
            message = f"(service {service.name}) {reason}"
        service.events = [{"id": str(uuid.uuid4()), "message": message}, *service.events]

    def _why(self, container: Any) -> str:
        state = container.attrs["State"]
        log = container.logs(tail=3).decode(errors="replace").strip().replace("\n", " | ")
        if container.status == "exited":
            return f"essential container exited with code {state.get('ExitCode')}: {log}"
        return f"health check {state.get('Health', {}).get('Status', 'never passed')}: {log}"

    # -- running a task definition ---------------------------------------------------------

    def local_image(self, image: str) -> str:
        """The ECR reference as the registry that stands in for ECR serves it."""
        registry, _, path = image.partition("/")
        return f"{self.registry_endpoint}/{path}" if ".dkr.ecr." in registry else image

    def resolve_secret(self, reference: str) -> str:
        if ":ssm:" in reference:
            name = reference.split(":parameter", 1)[1]
            parameter = self.clients["ssm"].get_parameter(Name=name, WithDecryption=True)
            return parameter["Parameter"]["Value"]
        return self.clients["secretsmanager"].get_secret_value(SecretId=reference)["SecretString"]

    def container_settings(self, arn: str) -> dict[str, Any]:
        """docker run's settings, from the task definition as ECS returns it."""
        definition = self.clients["ecs"].describe_task_definition(taskDefinition=arn)
        task = definition["taskDefinition"]
        container = task["containerDefinitions"][0]
        check = container["healthCheck"]
        command = check["command"]
        environment = {item["name"]: item["value"] for item in container.get("environment", [])}
        environment.update(
            {item["name"]: self.resolve_secret(item["valueFrom"]) for item in container["secrets"]}
        )
        seconds = 1_000_000_000
        return {
            "image": self.local_image(container["image"]),
            "environment": environment,
            "ports": {
                f"{mapping['containerPort']}/tcp": ("127.0.0.1", None)
                for mapping in container["portMappings"]
            },
            "healthcheck": {
                "test": command if command[0] == "CMD" else ["CMD-SHELL", command[1]],
                "interval": check["interval"] * seconds,
                "timeout": check["timeout"] * seconds,
                "retries": check["retries"],
                "start_period": check.get("startPeriod", 0) * seconds,
            },
            "nano_cpus": int(int(task["cpu"]) / 1024 * seconds),
            "mem_limit": f"{task['memory']}m",
        }

    def launch(self, service: Any, arn: str) -> Any:
        settings = self.container_settings(arn)
        env = next((t["value"] for t in service.tags if t["key"] == TAG_ENV), "unknown")
        self.docker.images.pull(settings["image"], auth_config=self.auth)
        return self.docker.containers.run(
            detach=True,
            name=f"mlops-vm-fargate-{env}-{arn.rsplit(':', 1)[-1]}-{uuid.uuid4().hex[:6]}",
            labels={TAG_ENV: env, "mlops-vm/task-definition": arn},
            **settings,
        )

    def ship_logs(self, container: Any, arn: str) -> None:
        """What the awslogs driver does: the container's lines into its log stream."""
        definition = self.clients["ecs"].describe_task_definition(taskDefinition=arn)
        options = definition["taskDefinition"]["containerDefinitions"][0]["logConfiguration"][
            "options"
        ]
        group, prefix = options["awslogs-group"], options["awslogs-stream-prefix"]
        stream = f"{prefix}/{CONTAINER}/{container.id[:12]}"
        lines = [line for line in container.logs().decode(errors="replace").splitlines() if line]
        new = lines[self.shipped.get(container.id, 0) :]
        if not new:
            return
        logs = self.clients["logs"]
        if container.id not in self.shipped:
            with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                logs.create_log_stream(logGroupName=group, logStreamName=stream)
            self.shipped[container.id] = 0
        now = int(time.time() * 1000)
        logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": now, "message": line} for line in new],
        )
        self.shipped[container.id] = len(lines)

    def _stop_tasks(self, service_arn: str, keep: str | None) -> None:
        with self._lock:  # the test thread may step too
            stopping = [k for k in self.tasks if k[0] == service_arn and k[1] != keep]
            containers = [self.tasks.pop(key)[0] for key in stopping]
        for container in containers:
            self._remove(container)

    @staticmethod
    def _remove(container: Any) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)

    # -- for the tests ---------------------------------------------------------------------

    def wait_stopped(self, env: str, timeout_s: float) -> bool:
        """Whether every task container of ENV is gone within TIMEOUT_S."""
        deadline = time.monotonic() + timeout_s
        while self.docker.containers.list(all=True, filters={"label": f"{TAG_ENV}={env}"}):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        return True

    def running(self, arn: str) -> Any:
        """The container running task definition ARN (its settings are ECS's)."""
        matches = [c for (_, td), (c, _) in self.tasks.items() if td == arn]
        assert matches, f"no task of {arn} runs; failures: {self.failures}"
        matches[0].reload()
        return matches[0]


class InstantScheduler:
    """ECS's scheduler where no task needs to run (the canary's tests: what is judged is
    CloudWatch's figures, not the container): every new deployment completes at once, or,
    for a task definition whose image ends with one of FAILING, fails as the circuit
    breaker fails a service that has no revision to go back to."""

    def __init__(self, region: str, failing: tuple[str, ...] = ()) -> None:
        self.region = region
        self.failing = failing
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="instant-ecs", daemon=True)

    def __enter__(self) -> "InstantScheduler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.step()
            self._stop.wait(0.05)

    def step(self) -> None:
        from moto.ecs.models import ecs_backends

        backend = ecs_backends[ACCOUNT][self.region]
        for service in list(backend.services.values()):
            wanted = service.task_definition
            primary = service.deployments[0] if service.deployments else {}
            if service.status != "ACTIVE" or (
                primary.get("taskDefinition") == wanted
                and primary.get("rolloutState") in ("COMPLETED", "FAILED")
            ):
                continue
            image = backend.describe_task_definition(wanted).container_definitions[0]["image"]
            state = "FAILED" if image.endswith(self.failing or ("\0",)) else "COMPLETED"
            service.deployments = [deployment(wanted, state, service.desired_count)]
            service.running_count = service.desired_count if state == "COMPLETED" else 0
