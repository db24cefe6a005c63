"""The documentation site: `make docs` builds it with warnings as errors, a broken internal link or
anchor fails it, and the API reference shows every public class with its parameters."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_cfqueues.get_provider_info import get_provider_info

pytestmark = pytest.mark.airflow3  # the docs extra is installed with Airflow 3 only

REPO = Path(__file__).resolve().parents[2]
MKDOCS = str(Path(sys.executable).with_name("mkdocs"))


def build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [MKDOCS, "build", "--strict", "--config-file", str(root / "mkdocs.yml"), "--site-dir", str(site)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env=env, cwd=root)


def copy_of_the_docs(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("mkdocs.yml", "README.md", "CHANGELOG.md"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "docs", root / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_the_site_builds_and_lists_every_public_class(tmp_path: Path) -> None:
    built = build(REPO, tmp_path / "site")
    assert built.returncode == 0, built.stderr[-3000:]
    reference = "".join(p.read_text() for p in (tmp_path / "site" / "reference").rglob("*.html"))
    info = get_provider_info()
    modules = [m for group in ("operators", "sensors", "triggers") for e in info[group] for m in e["python-modules"]]
    modules += ["airflow_provider_cfqueues.hooks.queues"]
    public = {
        name
        for module in modules
        for name, value in vars(importlib.import_module(module)).items()
        if name.startswith("CloudflareQueues") and isinstance(value, type) and value.__module__ == module
    }
    public |= {path.rpartition(".")[2] for path in info["notifications"]}
    missing = sorted(
        name for name in public if 'id="airflow_provider_cfqueues.' not in reference or name not in reference
    )
    assert not missing, missing
    assert "cloudflare_queue" in reference and "message_retry_delay" in reference  # the :param: lists


@pytest.mark.parametrize(
    ("page", "broken"),
    [("operators.md", "[the hook](hook.md#no-such-heading)"), ("testing.md", "[gone](no-such-page.md)")],
)
def test_a_broken_internal_link_fails_the_build(tmp_path: Path, page: str, broken: str) -> None:
    root = copy_of_the_docs(tmp_path)
    target = root / "docs" / page
    target.write_text(target.read_text() + f"\n\nSee {broken}.\n")
    failed = build(root, tmp_path / "site")
    assert failed.returncode != 0
    assert re.search(r"no-such-(heading|page)", failed.stderr), failed.stderr[-2000:]
