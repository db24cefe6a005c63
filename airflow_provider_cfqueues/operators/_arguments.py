"""
The ``queue`` and ``retry_delay`` arguments of our operators, kept apart from Airflow's own.

``BaseOperator`` already has a ``queue`` (the executor queue tasks are routed to, e.g. a Celery
queue) and a ``retry_delay`` (the delay between task retries). Our operators take ``queue`` (the
Cloudflare queue) and, for PullAndAck, ``retry_delay`` (the delay before a failed *message* comes
back), so they store them as ``cloudflare_queue`` and ``message_retry_delay`` and leave Airflow's
attributes alone:

* ``executor_queue=`` and ``task_retry_delay=`` set Airflow's own ``queue`` and ``retry_delay``;
* values that only come from ``default_args`` (where ``queue`` and ``retry_delay`` mean Airflow's)
  are not taken as the Cloudflare queue or the message retry delay;
* ``.partial(queue=..., retry_delay=...)`` renames them before Airflow sees them, so a mapped task
  is not routed to an executor queue named after the Cloudflare queue; ``.expand(queue=[...])`` maps
  over Cloudflare queues the same way (Airflow's own ``queue`` cannot be mapped).
"""

from __future__ import annotations

from typing import Any

from .._compat import DEFAULT_QUEUE, DEFAULT_RETRY_DELAY, BaseOperator

#: our argument name -> the attribute it is stored under, the argument that reaches Airflow's one,
#: and Airflow's default (which partial() would otherwise take from our signature: None)
RENAMED = {
    "queue": ("cloudflare_queue", "executor_queue", DEFAULT_QUEUE),
    "retry_delay": ("message_retry_delay", "task_retry_delay", DEFAULT_RETRY_DELAY),
}


def take_renamed(name: str, value: Any, stored: Any, passthrough: Any, kwargs: dict[str, Any]) -> Any:
    """
    Resolve one renamed argument; put Airflow's value back into ``kwargs``; return ours.

    :param value: what was passed as ``name`` (``queue`` / ``retry_delay``), possibly from default_args.
    :param stored: what was passed as the stored name (``cloudflare_queue`` ...), set by ``partial()``.
    :param passthrough: what was passed for Airflow (``executor_queue`` ...).
    """
    default_args = kwargs.get("default_args") or {}
    if stored is not None:
        if value is not None:  # partial() moved Airflow's value to `name`
            kwargs[name] = value
        value = stored
    elif name in default_args and value is default_args[name]:
        value = None  # from default_args, where it means Airflow's setting
    if passthrough is not None:
        kwargs[name] = passthrough
    return value


def rename_partial_kwargs(kwargs: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """For ``.partial()``: ``queue`` -> ``cloudflare_queue``, ``executor_queue`` -> ``queue`` (same for retry_delay)."""
    for name in names:
        stored, passthrough, airflow_default = RENAMED[name]
        if name in kwargs:
            kwargs[stored] = kwargs.pop(name)
        kwargs[name] = kwargs.pop(passthrough, airflow_default)
    return kwargs


def base_partial(cls: type[BaseOperator], kwargs: dict[str, Any], names: tuple[str, ...]) -> Any:
    """Airflow's own ``partial`` for ``cls``, whose ``expand`` takes our names for ``names``."""
    return RenamingPartial(BaseOperator.__dict__["partial"].__get__(None, cls)(**kwargs), names)


class RenamingPartial:
    """
    What ``.partial()`` returns: Airflow's partial operator, whose ``expand(queue=[...])`` (and
    ``retry_delay``) map our arguments, stored names and all, instead of failing as "unmappable or
    already specified" (Airflow's ``queue`` is neither mappable nor ours).
    """

    def __init__(self, partial: Any, names: tuple[str, ...]) -> None:
        self._partial = partial
        self._names = names

    def expand(self, **mapped_kwargs: Any) -> Any:
        for name in self._names:
            stored = RENAMED[name][0]
            if name in mapped_kwargs:
                if stored in mapped_kwargs:
                    raise TypeError(f"expand() got both {name} and {stored}: they are the same argument")
                mapped_kwargs[stored] = mapped_kwargs.pop(name)
        return self._partial.expand(**mapped_kwargs)

    def __getattr__(self, name: str) -> Any:  # expand_kwargs() and the rest, as Airflow has them
        return getattr(self._partial, name)
