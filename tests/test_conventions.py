"""Conventions of the test suite that a reader relies on, checked."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent


def _runs_dag_test(function: ast.FunctionDef) -> bool:
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "test"
        and "dag" in ast.unparse(node.func.value).lower()
        for node in ast.walk(function)
    )


def test_tests_that_run_a_dag_carry_the_slow_mark() -> None:
    """``-m "not slow"`` must leave out every test that runs ``dag.test()`` (real Airflow runs)."""
    unmarked = []
    for path in sorted(TESTS.rglob("test_*.py")):
        tree = ast.parse(path.read_text())
        module_slow = any(
            isinstance(node, ast.Assign)
            and any(getattr(target, "id", "") == "pytestmark" for target in node.targets)
            and "slow" in ast.unparse(node.value)
            for node in tree.body
        )
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test") and _runs_dag_test(node):
                marked = any("mark.slow" in ast.unparse(decorator) for decorator in node.decorator_list)
                if not (module_slow or marked):
                    unmarked.append(f"{path.relative_to(TESTS)}::{node.name}")
    assert not unmarked, unmarked


def test_each_package_room_has_its_tests_folder() -> None:
    package = TESTS.parent / "airflow_provider_cfqueues"
    rooms = {p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    rooms -= {"sensors"}  # the sensor and its trigger are tested together, in tests/triggers
    # the common-messaging provider is tested with the provider's registration, in tests/airflow
    mirrored = {"hooks": "hook", "messaging": "airflow"}
    missing = [room for room in sorted(rooms) if not (TESTS / mirrored.get(room, room)).is_dir()]
    assert not missing, missing
