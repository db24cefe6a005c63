"""
Where poison goes (:class:`Router`): a queue, as copies in poison envelopes (:class:`QueueRoute`: the
drain's ``on_poison="<queue>"``, a rejection's dead-letter queue, the message trigger's
``poison_queue``), or the user's own callable (:class:`CallableRoute`). A router answers, message by
message, what it could not route; :mod:`.give_back` acks the rest.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from ..api.errors import CloudflareQueuesError, CloudflareQueuesPushError, CloudflareQueuesValidationError
from ..api.models import OutgoingMessage, PulledMessage
from .poison import PoisonEnvelope

if TYPE_CHECKING:  # the hook is passed in: nothing here imports an Airflow class
    from ..hooks.queues import CloudflareQueuesHook

#: each poison message with why it is routed
Poison = Sequence[tuple[PulledMessage, str]]


class Router(Protocol):
    """Routes poison messages; answers lease id -> why, for those it could not route."""

    def route(self, poison: Poison) -> Mapping[str, str]: ...


class QueueRoute:
    """
    Push each message, in a poison envelope with its reason, to queue ``target`` (id or name), in the
    fewest requests; sync (:meth:`route`) and async (:meth:`aroute`). A partial push is known message by
    message; an envelope over the size limit is not routed (its message is not acked).

    :param hook: the hook to push with (shared by the drain's workers: pushes take turns).
    :param target: the poison queue.
    :param source: the drained or watched queue, as named by the task or trigger.
    :param source_id: its id (looked up on first use when ``None``).
    :param routed_by: who routes (the envelope's ``routed_by``).
    :param clock: the envelope's ``routed_at``.
    """

    def __init__(
        self,
        hook: CloudflareQueuesHook,
        target: str,
        *,
        source: str,
        source_id: str | None = None,
        routed_by: Mapping[str, Any],
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.hook = hook
        self.target = target
        self.source = source
        self.source_id = source_id
        self.routed_by = routed_by
        self.clock = clock
        self._lock = threading.Lock()

    def route(self, poison: Poison) -> dict[str, str]:
        with self._lock:
            if self.source_id is None:
                try:
                    self.source_id = self.hook.resolve_queue_id(self.source)
                except CloudflareQueuesError as err:
                    return {m.lease_id: f"routing to {self.target} failed: {err}" for m, _ in poison}
            copies, sent, failed = self._copies(poison)
            if copies:
                try:
                    self.hook.push_messages(copies, queue=self.target)
                except CloudflareQueuesError as err:
                    failed.update(self._unpushed(sent, err))
            return failed

    async def aroute(self, poison: Poison) -> dict[str, str]:
        if self.source_id is None:
            try:
                self.source_id = (await self.hook.aget_queue(self.source)).queue_id
            except CloudflareQueuesError as err:
                return {m.lease_id: f"routing to {self.target} failed: {err}" for m, _ in poison}
        copies, sent, failed = self._copies(poison)
        if copies:
            try:
                await self.hook.apush_messages(copies, queue=self.target)
            except CloudflareQueuesError as err:
                failed.update(self._unpushed(sent, err))
        return failed

    def _copies(self, poison: Poison) -> tuple[list[OutgoingMessage], list[PulledMessage], dict[str, str]]:
        assert self.source_id is not None
        now = self.clock()
        copies: list[OutgoingMessage] = []
        sent: list[PulledMessage] = []
        failed: dict[str, str] = {}
        for message, reason in poison:
            try:
                copies.append(
                    PoisonEnvelope.wrap(
                        message,
                        reason=reason,
                        queue=self.source,
                        queue_id=self.source_id,
                        routed_by=self.routed_by,
                        routed_at=now,
                    )
                )
            except CloudflareQueuesValidationError as err:
                failed[message.lease_id] = str(err)
            else:
                sent.append(message)
        return copies, sent, failed

    def _unpushed(self, sent: list[PulledMessage], error: CloudflareQueuesError) -> dict[str, str]:
        pushed = set(error.pushed) if isinstance(error, CloudflareQueuesPushError) else set()
        why = f"routing to {self.target} failed: {error}"
        return {m.lease_id: why for i, m in enumerate(sent) if i not in pushed}


class CallableRoute:
    """
    The user's ``on_poison`` callable, called per message with the message, and with ``reason=`` when
    it takes that keyword. A message whose call raised is not routed.
    """

    def __init__(self, on_poison: Callable[..., Any]) -> None:
        self.on_poison = on_poison
        try:
            parameters = list(inspect.signature(on_poison).parameters.values())
        except (TypeError, ValueError):  # a builtin without a signature
            parameters = []
        self.takes_reason = any(p.name == "reason" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)

    def route(self, poison: Poison) -> dict[str, str]:
        failed: dict[str, str] = {}
        for message, reason in poison:
            try:
                if self.takes_reason:
                    self.on_poison(message, reason=reason)
                else:
                    self.on_poison(message)
            except Exception as err:
                failed[message.lease_id] = f"on_poison failed: {type(err).__name__}: {err}"
        return failed
