"""A user's callable, given as itself or as its dotted import path (``process=``, ``on_poison=``, filters)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from .errors import CloudflareQueuesValidationError


def resolve_callable(value: Callable[..., Any] | str | None, name: str) -> Callable[..., Any] | None:
    """A callable, or the one a dotted import path (``package.module.function``) names; ``None`` stays ``None``."""
    if value is None or callable(value):
        return value
    if isinstance(value, str):
        module, _, attribute = value.rpartition(".")
        if not module:
            raise CloudflareQueuesValidationError(
                f"{name}: {value!r} is not a dotted import path (package.module.function)"
            )
        try:
            resolved = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as err:
            raise CloudflareQueuesValidationError(f"{name}: cannot import {value!r}: {err}") from None
        if callable(resolved):
            return resolved  # type: ignore[no-any-return]
    raise CloudflareQueuesValidationError(f"{name} must be a callable or its dotted import path, got {value!r}")
