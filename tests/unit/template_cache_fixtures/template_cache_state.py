"""A test filter: whether the worker templating it compiles through the cache."""

from ansible._internal._templating._jinja_bits import AnsibleEnvironment


def template_cache_installed(_value: str) -> bool:
    return getattr(AnsibleEnvironment.compile, "mlops_vm_cached", False)


class FilterModule:
    def filters(self) -> dict:
        return {"template_cache_installed": template_cache_installed}
