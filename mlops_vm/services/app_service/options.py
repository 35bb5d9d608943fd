"""service.app_service as the target reads it: the schema's own pydantic model
(config.AppServiceConfig), so that each setting is declared once. ServiceSpec.options holds
that model's dump; reading it back validates it again (a spec built by hand, in tests)."""

from typing import Any

from pydantic import ValidationError

from mlops_vm.environment.config import AppServiceConfig
from mlops_vm.provision.errors import ErrorCode, ProvisionError


def options_of(options: dict[str, Any]) -> AppServiceConfig:
    try:
        return AppServiceConfig.model_validate(options)
    except ValidationError as error:
        problems = "; ".join(
            f"service.app_service.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in error.errors()
        )
        raise ProvisionError(
            ErrorCode.INVALID_INPUT,
            problems,
            hint="see service.app_service in the README's settings",
            provider="azure",
            operation="read service.app_service",
        ) from None
