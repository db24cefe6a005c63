"""
Where a drain's poison messages go: a queue (``on_poison="<queue>"``, or the consumer's dead-letter
queue for a message ``process`` rejected), as a copy in a poison envelope (:mod:`..api.poison`), or
the user's own callable.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..api.models import PulledMessage
from .drain import PoisonRoute
from .poison import PoisonEnvelope

if TYPE_CHECKING:  # the hook is passed in: nothing here imports an Airflow class
    from ..hooks.queues import CloudflareQueuesHook


def queue_route(
    hook: CloudflareQueuesHook,
    target: str,
    *,
    source: str,
    routed_by: Mapping[str, Any],
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> PoisonRoute:
    """
    A route that pushes each message, in a poison envelope with its reason, to queue ``target`` (id or
    name). ``source`` is the drained queue as the task names it (its id is looked up on first use).
    """
    lock = threading.Lock()  # the workers share this hook's session
    source_id: list[str] = []

    def route(message: PulledMessage, reason: str) -> None:
        with lock:
            if not source_id:
                source_id.append(hook.resolve_queue_id(source))
            copy = PoisonEnvelope.wrap(
                message, reason=reason, queue=source, queue_id=source_id[0], routed_by=routed_by, routed_at=clock()
            )
            hook.push_message(copy, queue=target)

    return route


def callable_route(on_poison: Callable[..., Any]) -> PoisonRoute:
    """The user's ``on_poison``: called with the message, and with ``reason=`` when it takes that keyword."""
    try:
        parameters = list(inspect.signature(on_poison).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature
        parameters = []
    takes_reason = any(p.name == "reason" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)

    def route(message: PulledMessage, reason: str) -> Any:
        return on_poison(message, reason=reason) if takes_reason else on_poison(message)

    return route
