"""The wheel and sdist build, and the wheel installs into a clean virtualenv and works there."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

# one run is enough: the wheel is the same for every Airflow, and it is installed with Airflow 3's constraints
pytestmark = [pytest.mark.slow, pytest.mark.airflow3]

REPO = Path(__file__).resolve().parents[2]
UV = str(Path(sys.executable).with_name("uv"))
PUBLIC_MODULES = [
    "airflow_provider_cfqueues",
    "airflow_provider_cfqueues.api",
    "airflow_provider_cfqueues.api.models",
    "airflow_provider_cfqueues.api.errors",
    "airflow_provider_cfqueues.emulator",
    "airflow_provider_cfqueues.emulator.__main__",
    "airflow_provider_cfqueues.hooks.queues",
    "airflow_provider_cfqueues.operators.queues",
    "airflow_provider_cfqueues.operators.admin",
    "airflow_provider_cfqueues.sensors.queues",
    "airflow_provider_cfqueues.triggers.queues",
    "airflow_provider_cfqueues.get_provider_info",
]
PROBE = f"""
import importlib, json
from importlib.metadata import entry_points, version
for name in {PUBLIC_MODULES!r}:
    importlib.import_module(name)
providers = entry_points(group="apache_airflow_provider")
(provider,) = [ep for ep in providers if ep.value.startswith("airflow_provider_cfqueues")]
info = provider.load()()
plugins = [ep.value for ep in entry_points(group="pytest11")]
print(json.dumps({{"version": version("airflow-provider-cfqueues"), "info": info, "pytest_plugins": plugins}}))
"""


def test_build_and_install_the_wheel(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([UV, "build", "--quiet", "--out-dir", str(dist), str(REPO)], check=True, timeout=300)
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    assert sdist.name == wheel.name.split("-py3")[0] + ".tar.gz"
    names = zipfile.ZipFile(wheel).namelist()
    assert "airflow_provider_cfqueues/py.typed" in names
    assert not any(name.startswith(("tests/", "example_dags/")) for name in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Requires-Dist: apache-airflow>=2.11.0" in metadata and "Project-URL:" in metadata
    assert "Classifier: Framework :: Apache Airflow :: Provider" in metadata

    venv = tmp_path / "venv"
    subprocess.run([UV, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    constraints = REPO / "requirements" / "constraints-airflow-3.txt"
    subprocess.run(
        [UV, "pip", "install", "--quiet", "--python", python, "-c", str(constraints), f"{wheel}[common-messaging]"],
        check=True,
        timeout=900,
    )
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path / "airflow-home")}
    result = subprocess.run(
        [python, "-c", PROBE], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["version"] == wheel.name.split("-")[1]
    assert report["info"]["package-name"] == "airflow-provider-cfqueues"
    assert report["info"]["connection-types"][0]["connection-type"] == "cloudflare_queues"
    assert "airflow_provider_cfqueues.pytest_plugin" in report["pytest_plugins"]
