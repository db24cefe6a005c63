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
def test_the_sensor_and_the_admin_operators_do_not_import_the_drain_or_the_stream(module: str) -> None:
    loaded = loaded_after_importing(module)
    assert "airflow_provider_cfqueues.operators.base" in loaded
    operators = {"consume", "pull_ack", "push"}
    assert not {name for name in loaded if name.rpartition(".")[2] in operators and ".operators." in name}
    assert not {name for name in loaded if name.startswith("airflow_provider_cfqueues.consume")}
    stream = {"message", "message_stream", "queue_loop", "loop_registry"}
    assert not {name for name in loaded if name.rpartition(".")[2] in stream and ".triggers." in name}


def test_a_messages_fate_is_decided_without_airflow() -> None:
    """consume/ (the rules, the give-back flow, the drain engine) imports no Airflow module: the hook is
    passed in."""
    loaded = loaded_after_importing("airflow_provider_cfqueues.consume")
    assert "airflow_provider_cfqueues.consume.fate" in loaded
    assert not {name for name in loaded if name == "airflow" or name.startswith("airflow.")}
