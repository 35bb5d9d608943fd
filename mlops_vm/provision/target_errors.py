"""The errors of a release's target steps (one instance out of the load balancer and back),
the same on every cloud: what is missing, and what the user does about it."""

from mlops_vm.provision.errors import ErrorCode, ProvisionError


def no_load_balancer(provider: str, env: str, part: str, doing: str) -> ProvisionError:
    """ENV's load balancer, or the PART of it a target step needs, does not exist yet."""
    return ProvisionError(
        ErrorCode.NOT_FOUND,
        f"environment {env} has no {part}",
        hint="provision the load balancer first (ensure_load_balancer)",
        provider=provider,
        operation=doing,
    )


def instance_not_found(provider: str, message: str, doing: str) -> ProvisionError:
    """The instance a target step was given is gone (the caller's list is stale)."""
    return ProvisionError(
        ErrorCode.NOT_FOUND,
        message,
        hint="list the environment's instances again (list_instances)",
        provider=provider,
        operation=doing,
    )


def scaling_group_member(
    provider: str, message: str, rollout: str, template: str, doing: str
) -> ProvisionError:
    """A target step on an instance of a scaling group, which rolls its instances through
    ROLLOUT when its TEMPLATE changes: never one by one from outside."""
    return ProvisionError(
        ErrorCode.INVALID_INPUT,
        message,
        hint=f"scaling groups roll through their own mechanism ({rollout}): "
        f"change {template} and run provision",
        provider=provider,
        operation=doing,
    )
