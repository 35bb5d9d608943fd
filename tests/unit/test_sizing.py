"""Right-sizing: the machine-type tables, GPU settings refused before anything runs, and the
warnings `mlops-vm validate` prints."""

import json

import pytest
from typer.testing import CliRunner

from mlops_vm.cli import app
from mlops_vm.environment.config import ConfigError
from mlops_vm.environment.load import load_environment
from mlops_vm.environment.sizing import memory_bytes, sizing_warnings
from mlops_vm.provision import ErrorCode, ProvisionError, machine_types
from mlops_vm.provision.gpu_hints import GPU_HINTS, with_gpu_hint
from tests.environments import make_environment


def settings_line(directory, line: int | None) -> str:
    assert line is not None
    return (directory / "group_vars" / "all" / "mlops_vm.yml").read_text().splitlines()[line - 1]


def environment(tmp_path, provider: str, machine_type: str, **model) -> dict:
    return {
        "provider": {"name": provider, "region": "europe-west4"},
        "fleet": {"machine_type": machine_type},
        "model": model,
    }


# --- the tables -----------------------------------------------------------------------------


def test_gpu_machine_types_carry_their_gpus():
    g2 = machine_types.lookup("gcp", "g2-standard-24")
    assert (g2.gpu, g2.gpu_count, g2.terminate_on_maintenance) == ("nvidia-l4", 2, True)
    a2 = machine_types.lookup("gcp", "a2-highgpu-1g")
    assert (a2.gpu, a2.gpu_count, a2.terminate_on_maintenance) == ("nvidia-tesla-a100", 1, True)
    assert not machine_types.lookup("gcp", "e2-small").terminate_on_maintenance
    assert machine_types.lookup("aws", "g5.xlarge").gpu == "nvidia-a10g"
    assert machine_types.lookup("aws", "g6.12xlarge").gpu_count == 4
    assert machine_types.lookup("azure", "Standard_NC4as_T4_v3").gpu == "nvidia-tesla-t4"
    assert dict(machine_types.lookup("gcp", "n1-standard-4").attachable)["nvidia-tesla-t4"]


def test_architecture_and_ena_are_known_for_aws():
    assert machine_types.lookup("aws", "m7g.large").architecture == "arm64"
    assert machine_types.lookup("aws", "t3.small").architecture == "x86_64"
    assert not machine_types.lookup("aws", "t2.micro").ena_required
    assert machine_types.lookup("aws", "g5.xlarge").ena_required


def test_local_types_and_this_machine():
    whole = machine_types.lookup("local", "local")
    assert whole.vcpus >= 1 and whole.memory_gib > 0
    assert machine_types.lookup("local", "local-small").vcpus == 1
    assert machine_types.lookup("aws", "x9.unknown") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512m", 512 * 2**20), ("1g", 2**30), ("1.5G", 3 * 2**29), ("2048k", 2**21), ("lots", None)],
)
def test_memory_notation(text, expected):
    assert memory_bytes(text) == expected


# --- errors: refused before anything runs ----------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "machine_type", "extra", "field", "words"),
    [
        (
            "gcp",
            "g2-standard-4",
            {"fleet": {"accelerator": {"type": "nvidia-tesla-a100"}}},
            "fleet.accelerator.type",
            "comes with nvidia-l4, not nvidia-tesla-a100",
        ),
        (
            "gcp",
            "a2-highgpu-2g",
            {"fleet": {"accelerator": {"type": "nvidia-tesla-a100", "count": 1}}},
            "fleet.accelerator.count",
            "has 2 GPU(s), not 1",
        ),
        (
            "gcp",
            "e2-standard-4",
            {"fleet": {"accelerator": {"type": "nvidia-l4"}}},
            "fleet.accelerator",
            "has no GPU and takes none; GPU machine types: a2-highgpu-1g",
        ),
        (
            "gcp",
            "n1-standard-4",
            {"fleet": {"accelerator": {"type": "nvidia-l4"}}},
            "fleet.accelerator.type",
            "takes nvidia-tesla-t4 or nvidia-tesla-v100, not nvidia-l4",
        ),
        (
            "gcp",
            "n1-standard-4",
            {"fleet": {"accelerator": {"type": "nvidia-tesla-t4", "count": 3}}},
            "fleet.accelerator.count",
            "takes 1, 2, 4 x nvidia-tesla-t4, not 3",
        ),
        ("aws", "t3.small", {"model": {"gpus": 1}}, "model.gpus", "has no GPU"),
        (
            "aws",
            "g5.12xlarge",
            {"model": {"gpus": "per_replica", "replicas": 5}},
            "model.gpus",
            "needs 5 GPUs (model.replicas), but g5.12xlarge (48 vCPUs, 192 GiB, 4 x nvidia-a10g)",
        ),
        ("azure", "Standard_NC4as_T4_v3", {"model": {"gpus": 2}}, "model.gpus", "has 1"),
        (
            "local",
            "local",
            {"fleet": {"accelerator": {"type": "nvidia-l4"}}},
            "fleet.accelerator",
            "the local provider has no GPUs",
        ),
        ("aws", "t3.small", {"model": {"cpus": 4}}, "model.cpus", "Docker refuses"),
    ],
)
def test_incompatible_gpu_and_cpu_settings_are_refused(
    tmp_path, provider, machine_type, extra, field, words
):
    overrides = environment(tmp_path, provider, machine_type)
    overrides["fleet"].update(extra.get("fleet", {}))
    overrides["model"].update(extra.get("model", {}))
    directory = make_environment(tmp_path, "gpu", overrides)
    with pytest.raises(ConfigError) as raised:
        load_environment(directory)
    [problem] = raised.value.problems
    assert problem.field == f"mlops_vm.{field}"
    assert words in problem.message
    assert problem.file == directory / "group_vars" / "all" / "mlops_vm.yml"
    assert field.rsplit(".", 1)[-1] in settings_line(directory, problem.line)


@pytest.mark.parametrize(
    ("provider", "machine_type", "fleet", "model"),
    [
        ("gcp", "g2-standard-24", {"accelerator": {"type": "nvidia-l4", "count": 2}}, {}),
        ("gcp", "g2-standard-24", {}, {"gpus": "per_replica", "replicas": 2}),
        ("gcp", "n1-standard-8", {"accelerator": {"type": "nvidia-tesla-t4", "count": 2}}, {}),
        ("aws", "g6.12xlarge", {}, {"gpus": "all", "replicas": 2}),
        ("azure", "Standard_NC24ads_A100_v4", {}, {"gpus": 1}),
        ("aws", "p5.48xlarge", {}, {"gpus": 8}),  # not in the table: the cloud decides
    ],
)
def test_gpu_settings_that_fit_are_accepted(tmp_path, provider, machine_type, fleet, model):
    overrides = environment(tmp_path, provider, machine_type, **model)
    overrides["fleet"].update(fleet)
    loaded = load_environment(make_environment(tmp_path, "gpu", overrides))
    assert loaded.config.fleet.machine_type == machine_type


# --- warnings -------------------------------------------------------------------------------


def test_memory_and_workers_beyond_the_machine_are_warned_with_their_lines(tmp_path):
    overrides = environment(tmp_path, "aws", "t3.small", replicas=3, memory="1g", workers=2)
    directory = make_environment(tmp_path, "tight", overrides)
    warnings = {w.field: w for w in sizing_warnings(load_environment(directory))}
    assert set(warnings) == {"mlops_vm.model.memory", "mlops_vm.model.workers"}
    assert (
        "3 replicas x 1g is more than the 2 GiB of t3.small"
        in warnings["mlops_vm.model.memory"].message
    )
    assert "6 processes on the 2 vCPUs" in warnings["mlops_vm.model.workers"].message
    for field, warning in warnings.items():
        assert field.rsplit(".", 1)[-1] in settings_line(directory, warning.line)


def test_the_warnings_take_their_lines_from_the_loaded_environment(tmp_path):
    """The loaded environment keeps its YAML node: the lines need no second read of the file
    (here it is gone by then)."""
    overrides = environment(tmp_path, "aws", "t3.small", replicas=3, memory="1g", workers=2)
    directory = make_environment(tmp_path, "kept", overrides)
    settings = directory / "group_vars" / "all" / "mlops_vm.yml"
    lines = settings.read_text().splitlines()
    loaded = load_environment(directory)
    settings.unlink()
    warnings = sizing_warnings(loaded)
    assert {w.field for w in warnings} == {"mlops_vm.model.memory", "mlops_vm.model.workers"}
    for warning in warnings:
        assert warning.line is not None
        assert warning.field.rsplit(".", 1)[-1] in lines[warning.line - 1]


def test_settings_that_fit_give_no_warning(tmp_path):
    overrides = environment(tmp_path, "aws", "t3.large", replicas=2, memory="2g", workers=1)
    assert sizing_warnings(load_environment(make_environment(tmp_path, "roomy", overrides))) == []
    assert sizing_warnings(load_environment("local")) == []


def test_validate_prints_the_warnings(tmp_path):
    overrides = {"fleet": {"machine_type": "local-small"}, "model": {"replicas": 1, "memory": "3g"}}
    directory = make_environment(tmp_path, "smallvm", overrides)
    result = CliRunner().invoke(app, ["validate", str(directory), "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["ok"] is True
    [warning] = answer["warnings"]
    assert "mlops_vm.model.memory: 1 replicas x 3g is more than the 2 GiB of local-small" in warning


# --- GPU quota and stock-out errors ---------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "words"),
    [(ErrorCode.QUOTA, "GPU quotas are per GPU model"), (ErrorCode.CAPACITY, "other zones")],
)
def test_gpu_quota_and_stock_out_errors_say_what_to_do(code, words):
    error = with_gpu_hint(ProvisionError(code, "no", hint="cloud's own"), "gcp", "g2-standard-4")
    assert error.hint.startswith(GPU_HINTS[code]) and error.hint.endswith("; cloud's own")
    assert words in error.hint
    plain = with_gpu_hint(ProvisionError(code, "no", hint="cloud's own"), "gcp", "e2-small")
    assert plain.hint == "cloud's own"
    attached = with_gpu_hint(ProvisionError(code, "no"), "gcp", "n1-standard-4", object())
    assert attached.hint == GPU_HINTS[code]
    other = with_gpu_hint(ProvisionError(ErrorCode.AUTH, "no", hint="log in"), "aws", "g5.xlarge")
    assert other.hint == "log in"
