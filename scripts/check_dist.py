"""
Check what ``make dist`` built, before anything is published::

    python scripts/check_dist.py dist/

* the wheel holds the package, ``py.typed`` and the provider's entry points (``apache_airflow_provider``,
  ``pytest11``), and no tests, caches or compiled files;
* its metadata names the package and the version ``airflow_provider_cfqueues.__version__`` says, and its
  long description (the README, Markdown) renders as PyPI renders it;
* a wheel built from the sdist has the same files with the same contents.

Exits 1 with one line per problem; prints what it checked otherwise.
"""

from __future__ import annotations

import email
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "airflow_provider_cfqueues"
DISTRIBUTION = "airflow_provider_cfqueues"
ENTRY_POINTS = ("[apache_airflow_provider]", "[pytest11]")
FORBIDDEN = re.compile(r"(^|/)(tests?|__pycache__)/|\.py[co]$|(^|/)\.")
REPO = Path(__file__).resolve().parents[1]


def wheel_problems(wheel: Path) -> list[str]:
    """What is wrong with ``wheel`` (an empty list: nothing)."""
    problems = []
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next((n for n in names if n.endswith(".dist-info/METADATA")), None)
        entry_points = next((n for n in names if n.endswith(".dist-info/entry_points.txt")), None)
        if f"{PACKAGE}/__init__.py" not in names:
            problems.append(f"the wheel does not hold the package ({PACKAGE}/__init__.py)")
        if f"{PACKAGE}/py.typed" not in names:
            problems.append(f"the wheel has no {PACKAGE}/py.typed: type checkers would ignore the package's hints")
        problems.extend(f"the wheel holds {name}, which it must not" for name in names if FORBIDDEN.search(name))
        if entry_points is None:
            problems.append("the wheel has no entry_points.txt")
        else:
            text = archive.read(entry_points).decode()
            problems.extend(f"entry_points.txt lacks {group}" for group in ENTRY_POINTS if group not in text)
        if info is None:
            problems.append("the wheel has no METADATA")
        else:
            problems.extend(metadata_problems(archive.read(info).decode()))
    return problems


def metadata_problems(raw: str) -> list[str]:
    """The wheel's METADATA: name, version, summary, and a long description that renders."""
    metadata = email.message_from_string(raw)
    problems = []
    version = _package_version()
    if metadata.get("Name", "").replace("-", "_").lower() != DISTRIBUTION:
        problems.append(f"METADATA names {metadata.get('Name')!r}, not airflow-provider-cfqueues")
    if metadata.get("Version") != version:
        problems.append(f"METADATA has version {metadata.get('Version')!r}, the package says {version!r}")
    if not metadata.get("Summary"):
        problems.append("METADATA has no Summary")
    content_type = metadata.get("Description-Content-Type", "")
    description = metadata.get_payload()
    if not isinstance(description, str) or not description.strip():
        problems.append("METADATA has no long description (the README)")
    elif not content_type.startswith("text/markdown"):
        problems.append(f"the long description is {content_type or 'untyped'!r}, not text/markdown")
    else:
        from readme_renderer.markdown import render  # what PyPI (and twine check) renders it with

        if render(description) is None:
            problems.append("the long description does not render as Markdown")
    return problems


def rebuild_problems(sdist: Path, wheel: Path) -> list[str]:
    """Build a wheel from ``sdist``; what differs from ``wheel`` (files and contents)."""
    with tempfile.TemporaryDirectory() as out:
        uv = Path(sys.executable).with_name("uv")
        subprocess.run([str(uv), "build", "--wheel", "--quiet", "--out-dir", out, str(sdist)], check=True, timeout=300)
        (rebuilt,) = Path(out).glob("*.whl")
        with zipfile.ZipFile(wheel) as first, zipfile.ZipFile(rebuilt) as second:
            files = {n: first.read(n) for n in first.namelist() if not n.endswith("RECORD")}
            again = {n: second.read(n) for n in second.namelist() if not n.endswith("RECORD")}
    problems = [f"only in the wheel built from the sdist: {n}" for n in sorted(set(again) - set(files))]
    problems += [f"missing from the wheel built from the sdist: {n}" for n in sorted(set(files) - set(again))]
    problems += [
        f"differs when built from the sdist: {n}" for n in sorted(set(files) & set(again)) if files[n] != again[n]
    ]
    return problems


def _package_version() -> str:
    found = re.search(r'^__version__ = "([^"]+)"', (REPO / PACKAGE / "__init__.py").read_text(), re.M)
    assert found, "no __version__ in the package"
    return found.group(1)


def main(dist: Path) -> int:
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        print(f"{dist} must hold one wheel and one sdist, not {len(wheels)} and {len(sdists)}")
        return 1
    problems = wheel_problems(wheels[0]) + rebuild_problems(sdists[0], wheels[0])
    for problem in problems:
        print(problem)
    if not problems:
        print(f"checked {wheels[0].name} and {sdists[0].name}: contents, entry points, metadata, sdist rebuild")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "dist")))
