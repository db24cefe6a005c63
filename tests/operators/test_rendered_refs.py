"""The Purge Messages operator's reading of ``refs`` as a template left them (pure)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from airflow_provider_cfqueues.api.errors import CloudflareQueuesValidationError
from airflow_provider_cfqueues.operators.purge import rendered_refs


@pytest.mark.parametrize(
    ("refs", "read"),
    [
        (["a", "b"], ["a", "b"]),
        (("a", None, "b"), ["a", "b"]),  # a mapped selection's gaps
        ('["a", "b"]', ["a", "b"]),  # JSON
        ("['a', 'b']", ["a", "b"]),  # what Jinja writes for a Python list
        ("  []  ", []),
        ([{"ref": "a"}], [{"ref": "a"}]),
    ],
)
def test_a_list_or_its_text_is_read(refs: Any, read: list[Any]) -> None:
    assert rendered_refs(refs) == read


@pytest.mark.parametrize(
    ("refs", "says"),
    [
        (None, "refs is None"),
        ("None", "rendered to 'None', not a list of refs"),
        ("", "rendered to '', not a list of refs"),
        ("abc", "rendered to 'abc', not a list of refs"),
        ("[a, b", "which is not a list"),
        ("[__import__('os')]", "which is not a list"),  # text is read as data, never run
        ({"ref": "a"}, "must be a list of refs, got dict"),
        (42, "must be a list of refs, got int"),
    ],
)
def test_anything_else_is_refused(refs: Any, says: str) -> None:
    with pytest.raises(CloudflareQueuesValidationError, match=re.escape(says)):
        rendered_refs(refs)
