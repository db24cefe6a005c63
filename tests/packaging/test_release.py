"""Release tooling: the workflows are valid, `make dist`'s checks catch a broken wheel, and a tag must
agree with the package's version and the changelog."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
import yaml

pytestmark = pytest.mark.airflow3  # no Airflow involved: once is enough

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
CHECK_JSONSCHEMA = str(Path(sys.executable).with_name("check-jsonschema"))


def script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    command = [CHECK_JSONSCHEMA, "--builtin-schema", "vendor.github-workflows", *map(str, paths)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_the_workflows_are_valid_and_a_broken_one_is_caught(tmp_path: Path) -> None:
    assert [w.name for w in WORKFLOWS] == ["ci.yml", "docs.yml", "release.yml"]
    checked = validate(*WORKFLOWS)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text("name: broken\non: push\njobs:\n  test:\n    steps:\n      - run: make test\n")  # no runs-on
    assert validate(broken).returncode != 0


def test_ci_runs_the_readme_command_and_keeps_secrets_from_pull_requests() -> None:
    for workflow in WORKFLOWS:  # no trigger runs a fork's code with this repository's secrets
        assert "pull_request_target" not in yaml.safe_load(workflow.read_text())[True]
    ci = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    triggers = ci[True]  # YAML reads the key "on" as True
    assert {"push", "pull_request", "workflow_dispatch", "schedule"} <= set(triggers)
    test_steps = [step.get("run") for step in ci["jobs"]["test"]["steps"]]
    assert ".ci/run" in test_steps
    cache = next(s for s in ci["jobs"]["test"]["steps"] if s.get("uses", "").startswith("actions/cache"))
    assert "constraints-*.txt" in cache["with"]["key"]
    contract = ci["jobs"]["contract"]
    assert contract["if"] == "github.event_name == 'schedule' || github.event_name == 'workflow_dispatch'"
    assert any(step.get("run") == "make contract" for step in contract["steps"])
    release = yaml.safe_load((REPO / ".github" / "workflows" / "release.yml").read_text())
    assert release["jobs"]["publish"]["permissions"] == {"id-token": "write"}  # trusted publishing


def test_dist_checks_pass_on_the_build_and_catch_a_broken_wheel(tmp_path: Path) -> None:
    check = script("check_dist")
    dist = tmp_path / "dist"
    uv = str(Path(sys.executable).with_name("uv"))
    subprocess.run([uv, "build", "--quiet", "--out-dir", str(dist), str(REPO)], check=True, timeout=300)
    assert check.main(dist) == 0
    (wheel,) = dist.glob("*.whl")
    untyped = tmp_path / "untyped" / wheel.name
    untyped.parent.mkdir()
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(untyped, "w") as target:
        for item in source.infolist():
            if not item.filename.endswith("py.typed"):
                target.writestr(item, source.read(item))
        target.writestr("tests/test_leftover.py", "")
    problems = check.wheel_problems(untyped)
    assert any("py.typed" in p for p in problems) and any("tests/test_leftover.py" in p for p in problems)
    assert any("differs" in p or "missing" in p for p in check.rebuild_problems(next(dist.glob("*.tar.gz")), untyped))


@pytest.mark.parametrize(
    ("tag", "init", "changelog", "says"),
    [
        ("v0.2.0", '__version__ = "0.2.0"', "# Changelog\n\n## 0.2.0\n", None),
        ("v0.2.0", '__version__ = "0.1.0"', "## 0.2.0\n", "the package's version 0.1.0"),
        ("v0.2.0", '__version__ = "0.2.0"', "## 0.1.0\n", "top section of CHANGELOG.md is 0.1.0"),
        ("v0.2.0", '__version__ = "0.2.0"', "## 0.2.0 (unreleased)\n", "still says (unreleased)"),
        ("release-1", '__version__ = "0.2.0"', "## 0.2.0\n", "is not v<major>.<minor>.<patch>"),
    ],
)
def test_a_tag_must_agree_with_the_version_and_the_changelog(
    tag: str, init: str, changelog: str, says: str | None
) -> None:
    problems = script("check_release").release_problems(tag, init, changelog)
    assert problems == [] if says is None else any(says in p for p in problems), problems
