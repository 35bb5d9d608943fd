"""A managed target's own section (ServiceSpec.options: service.<target> of the
environment) as the pydantic model mlops_vm/config.py validates it with: one schema per
setting. A value the model refuses is refused as ProvisionError(INVALID_INPUT) naming the
field, before anything is created."""

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mlops_vm.provision.errors import ErrorCode, ProvisionError

M = TypeVar("M", bound=BaseModel)


def parse_options(model: type[M], options: dict[str, Any], section: str) -> M:
    """OPTIONS (a model_dump of MODEL, or a caller's dict) as MODEL; SECTION names the
    environment's section in the error (service.ecs, service.lambda)."""
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
            operation=f"check {section}",
        ) from None
