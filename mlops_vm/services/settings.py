"""Each managed target's own section of the environment (service.ecs, service.lambda): the
pydantic model mlops_vm/config.py validates it with, declared once there, and
`parse_options`, through which a target reads its section back (ServiceSpec.options),
refusing a bad value naming the field before anything is made."""

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mlops_vm.config import EcsServiceConfig, LambdaServiceConfig
from mlops_vm.provision.errors import ErrorCode, ProvisionError

__all__ = ["EcsServiceConfig", "LambdaServiceConfig", "parse_options"]

M = TypeVar("M", bound=BaseModel)


def parse_options(model: type[M], options: dict[str, Any], section: str, provider: str = "") -> M:
    """OPTIONS (ServiceSpec.options: a model_dump of MODEL, or a dict built by hand in tests)
    as MODEL; SECTION names the environment's section in the error (service.ecs, ...)."""
    try:
        return model.model_validate(options)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join([section, *map(str, problem['loc'])])}: {problem['msg']}"
            for problem in error.errors()
        )
        raise ProvisionError(
            ErrorCode.INVALID_INPUT,
            problems,
            hint=f"fix {section} in the environment file",
            provider=provider,
            operation=f"check {section}",
        ) from None
