"""service.app_service as the target reads it: its one pydantic model (services/settings.py).
ServiceSpec.options holds that model's dump; reading it back validates it again (a spec
built by hand, in tests)."""

from typing import Any

from mlops_vm.services.settings import AppServiceConfig, parse_options


def options_of(options: dict[str, Any]) -> AppServiceConfig:
    return parse_options(AppServiceConfig, options, "service.app_service", provider="azure")
