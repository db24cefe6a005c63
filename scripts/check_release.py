"""
Before a release is published: the tag, the package's version and the top section of CHANGELOG.md must
agree, and that section must not say "unreleased"::

    python scripts/check_release.py v0.1.0

Exits 1 with the disagreement; the release workflow runs it first.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def release_problems(tag: str, init: str, changelog: str) -> list[str]:
    """What disagrees between ``tag`` (``v1.2.3``), the package's ``__init__`` text and the changelog."""
    problems = []
    version = re.search(r'^__version__ = "([^"]+)"', init, re.M)
    top = re.search(r"^## (\S+)(.*)$", changelog, re.M)
    if not re.fullmatch(r"v\d+\.\d+\.\d+([ab]|rc)?\d*", tag):
        problems.append(f"tag {tag!r} is not v<major>.<minor>.<patch>")
    if version is None:
        problems.append("airflow_provider_cfqueues/__init__.py has no __version__")
    elif f"v{version.group(1)}" != tag:
        problems.append(f"the tag is {tag}, the package's version {version.group(1)}")
    if top is None:
        problems.append("CHANGELOG.md has no '## <version>' section")
    else:
        if f"v{top.group(1)}" != tag:
            problems.append(f"the top section of CHANGELOG.md is {top.group(1)}, the tag {tag}")
        if "unreleased" in top.group(2).lower():
            problems.append(f"the top section of CHANGELOG.md still says {top.group(2).strip()}")
    return problems


def main(tag: str) -> int:
    init = (REPO / "airflow_provider_cfqueues" / "__init__.py").read_text()
    problems = release_problems(tag, init, (REPO / "CHANGELOG.md").read_text())
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{tag}: the package's version and CHANGELOG.md agree")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
