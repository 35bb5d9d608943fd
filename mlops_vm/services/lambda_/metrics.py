"""Lambda's figures from CloudWatch: per version as the alias `live` runs it (the
ExecutedVersion dimension, which is how Lambda counts the versions of a weighted alias),
and the alias as a whole."""

from mlops_vm.metrics import Figures
from mlops_vm.provision.aws import metrics
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.services.lambda_ import names


def alias_dimensions(function: str, version: str | None = None) -> dict[str, str]:
    dimensions = {"FunctionName": function, "Resource": f"{function}:{names.ALIAS}"}
    return {**dimensions, "ExecutedVersion": version} if version else dimensions


def version_figures(
    ctx: AwsContext, function: str, versions: list[str], window_s: float
) -> dict[str, Figures]:
    """VERSIONS' figures over the window, by version, and the alias's (key ALIAS)."""
    series = {v: alias_dimensions(function, v) for v in versions}
    series[names.ALIAS] = alias_dimensions(function)
    return metrics.figures(ctx, metrics.LAMBDA, series, window_s)
