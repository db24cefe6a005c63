"""
The arguments every Cloudflare Queues trigger takes, and its serialization.

A trigger takes the queue as ``cloudflare_queue=``, as the operators do (and as ``MessageQueueTrigger``
passes it on: common-messaging keeps ``queue=`` for a queue URI). An argument the trigger does not
know fails at construction, naming the close matches: Airflow's ``BaseTrigger`` would otherwise
swallow it, and the mistake would show only when the trigger runs.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from ..api.guidance import foreign_names_error

#: the parameters every trigger has, serialized after the queue
_COMMON = ("account_id", "cloudflare_queues_conn_id")
#: names users reach for, and the argument they mean
_MEANT = {"queue": "cloudflare_queue", "queue_name": "cloudflare_queue"}


def _parameters(cls: type) -> list[str]:
    signature = inspect.signature(cls.__init__)  # type: ignore[misc]
    return [name for name, p in signature.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]


def unknown_arguments_message(cls: type, unknown: dict[str, Any]) -> str:
    """``Cls got unexpected argument(s) x (did you mean y?); it takes a, b, c``; other providers' names
    get this provider's (:mod:`..api.guidance`)."""
    accepted = _parameters(cls)
    if foreign := foreign_names_error(cls.__name__, [name for name in unknown if name not in _MEANT]):
        return f"{foreign}\n{cls.__name__} takes {', '.join(accepted)}"
    parts = []
    for name in sorted(unknown):
        close = [_MEANT[name]] if name in _MEANT else difflib.get_close_matches(name, accepted, n=1)
        parts.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    return f"{cls.__name__} got unexpected argument(s) {', '.join(parts)}; it takes {', '.join(accepted)}"


class QueueTriggerArguments:
    """
    Mixin of the provider's triggers: the queue, account and connection arguments, the check for
    unknown ones, and ``serialize()`` (the queue, the subclass's ``_fields``, then account and conn id).
    """

    #: the subclass's own arguments, in the order serialize() gives them
    _fields: tuple[str, ...] = ()
    #: the module its serialized classpath names (a public import path that stays when the class moves)
    _serialized_module: str | None = None
    cloudflare_queue: str | None
    account_id: str | None
    cloudflare_queues_conn_id: str

    def _take_queue_arguments(
        self, cloudflare_queue: str | None, account_id: str | None, conn_id: str, unknown: dict[str, Any]
    ) -> None:
        if unknown:
            raise TypeError(unknown_arguments_message(type(self), unknown))
        self.cloudflare_queue = cloudflare_queue
        self.account_id = account_id
        self.cloudflare_queues_conn_id = conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        fields = ("cloudflare_queue", *self._fields, *_COMMON)
        module = self._serialized_module or type(self).__module__
        return f"{module}.{type(self).__qualname__}", {name: getattr(self, name) for name in fields}
