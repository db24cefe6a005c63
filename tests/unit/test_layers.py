"""What may import what (docs/architecture.md), checked in fresh interpreters."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import importlib, json, pkgutil, sys
for name in {modules}:
    module = importlib.import_module(name)
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        importlib.import_module(f"{{name}}.{{info.name}}")
print(json.dumps(sorted(sys.modules)))
"""


def loaded_after_importing(*modules: str) -> set[str]:
    """The modules a fresh interpreter holds after importing ``modules`` (packages with all their modules)."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(modules=list(modules))],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_the_api_core_imports_nothing_from_airflow() -> None:
    loaded = loaded_after_importing("airflow_provider_cfqueues.api")
    assert "airflow_provider_cfqueues.api.flows" in loaded
    assert not {name for name in loaded if name == "airflow" or name.startswith("airflow.")}


@pytest.mark.parametrize(
    "module", ["airflow_provider_cfqueues.sensors.queues", "airflow_provider_cfqueues.operators.admin"]
)
def test_the_sensor_and_the_admin_operators_do_not_import_the_drain(module: str) -> None:
    loaded = loaded_after_importing(module)
    assert "airflow_provider_cfqueues.operators.base" in loaded
    drain = {"consume", "drain", "drain_policy", "drain_plan", "pull_ack", "push", "leases"}
    assert not {name for name in loaded if name.rpartition(".")[2] in drain and ".operators." in name}
