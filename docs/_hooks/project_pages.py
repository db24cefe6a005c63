"""
MkDocs hook: the README (the site's home page) and CHANGELOG.md live at the repository's root; the
site gets them as pages. Links from any page to ``docs/...`` and to the changelog become the site's
own pages; links to the repository's other files (``example_dags/...``) become their path in code,
since the site does not carry source files.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
PAGES = {"README.md": "index.md", "CHANGELOG.md": "changelog.md"}


def _site_links(text: str) -> str:
    text = re.sub(r"\]\(docs/([^)]+)\)", r"](\1)", text)
    text = re.sub(r"\]\((?:\.\./)?CHANGELOG\.md\)", "](changelog.md)", text)
    # [text](../example_dags/x.py) or [text](example_dags): the repository's files, not pages
    return re.sub(r"\[([^\]]+)\]\((?:\.\./)?(example_dags[^)]*)\)", r"\1 (`\2`)", text)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return _site_links(markdown)


def on_config(config: Any) -> Any:
    """The version the site describes, in its title (``mike`` adds the selector between versions)."""
    init = ROOT / "airflow_provider_cfqueues" / "__init__.py"
    found = re.search(r'^__version__ = "([^"]+)"', init.read_text(), re.M) if init.exists() else None
    version = found.group(1) if found else metadata.version("airflow-provider-cfqueues")  # built elsewhere
    config["site_name"] = f"{config['site_name']} {version}"
    return config


def on_files(files: Files, config: Any) -> Files:
    for source, page in PAGES.items():
        files.append(File.generated(config, page, content=_site_links((ROOT / source).read_text())))
    return files
