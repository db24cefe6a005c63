"""
Queue administration as flows (see :mod:`.flows`): create, change, pause, resume, purge and delete
queues, and create, change and delete their HTTP pull consumer. Queues are named by id or name as
everywhere; the name cache follows creations and deletions.
"""

from __future__ import annotations

from collections.abc import Callable

from .admin_requests import (
    ConsumerSettings,
    create_consumer_request,
    create_queue_request,
    delete_consumer_request,
    delete_queue_request,
    purge_request,
    purge_status_request,
    replace_consumer_request,
    update_queue_request,
    validate_queue_name,
)
from .errors import (
    CloudflareQueuesApiError,
    CloudflareQueuesConflictError,
    CloudflareQueuesError,
    CloudflareQueuesNotFoundError,
    CloudflareQueuesValidationError,
)
from .flows import (
    CallRecord,
    Flow,
    FlowContext,
    QueueTarget,
    Sleep,
    call,
    get_queue,
    list_consumers,
    on_queue,
    required,
    resolve_named_queue,
    resolve_queue,
)
from .models import Consumer, ConsumerRequest, ConsumerSettingsRequest, PurgeStatus, Queue, QueueSettingsRequest
from .operations import ApiRequest


def create_queue(
    ctx: FlowContext, *, name: str, settings: QueueSettingsRequest, jurisdiction: str | None = None
) -> Flow[Queue]:
    """
    Create a queue; its id joins the name cache. When an attempt's answer was lost and the resend
    finds the name taken, the lost attempt created it: that queue is returned (with a warning).
    """
    record = CallRecord()
    try:
        envelope = yield from call(
            ctx, create_queue_request(ctx.account_id, validate_queue_name(name), settings, jurisdiction), record
        )
    except CloudflareQueuesApiError as err:
        if not (record.resent_after_unknown and err.status in (400, 409)):
            raise
        ctx.log.warning("Creating queue %s: an answer was lost and the resend found the name taken (%s)", name, err)
        found = yield from get_queue(ctx, queue=name)
        return found
    queue: Queue = required(envelope, "create_queue")
    ctx.names.put(ctx.scope, ctx.account_id, queue.queue_name, queue.queue_id)
    return queue


def update_queue(ctx: FlowContext, *, queue: str, settings: QueueSettingsRequest) -> Flow[Queue]:
    """Change the given settings (``PATCH``: the others stay as they are) of the queue named."""
    target = yield from resolve_named_queue(ctx, queue, "update_queue")
    envelope = yield from on_queue(
        ctx, target=target, build=lambda qid: update_queue_request(ctx.account_id, qid, settings)
    )
    updated: Queue = required(envelope, "update_queue")
    return updated


def delete_queue(ctx: FlowContext, *, queue: str) -> Flow[str]:
    """Delete the queue named and every message in it; returns its id and forgets its name."""
    target = yield from resolve_named_queue(ctx, queue, "delete_queue")
    yield from _delete(ctx, target, lambda qid: delete_queue_request(ctx.account_id, qid))
    if target.ref != target.queue_id:
        ctx.names.forget(ctx.scope, ctx.account_id, target.ref)
    return target.queue_id


def purge_queue(ctx: FlowContext, *, queue: str, wait: bool, timeout: float, poll_interval: float) -> Flow[PurgeStatus]:
    """Start deleting every message of the queue named; when ``wait``, poll the purge until it completes."""
    target = yield from resolve_named_queue(ctx, queue, "purge")
    yield from on_queue(ctx, target=target, build=lambda qid: purge_request(ctx.account_id, qid))
    started = ctx.monotonic()
    slept = 0.0  # counted too: the time waited, even where sleeping is simulated
    while True:
        status = yield from _purge_status(ctx, target)
        if not wait or status.done:
            return status
        if max(ctx.monotonic() - started, slept) + poll_interval > timeout:
            raise CloudflareQueuesError(
                f"the purge of queue {target.ref} started at {status.started_at} has not completed after "
                f"{timeout:g} s; it goes on in the service (wait longer, or poll its status)",
                operation="purge_status",
            )
        yield Sleep(poll_interval)
        slept += poll_interval


def purge_status(ctx: FlowContext, *, queue: str | None) -> Flow[PurgeStatus]:
    target = yield from resolve_queue(ctx, queue)
    return (yield from _purge_status(ctx, target))


def _purge_status(ctx: FlowContext, target: QueueTarget) -> Flow[PurgeStatus]:
    envelope = yield from on_queue(ctx, target=target, build=lambda qid: purge_status_request(ctx.account_id, qid))
    status: PurgeStatus = required(envelope, "purge_status")
    return status


def create_consumer(ctx: FlowContext, *, queue: str, settings: ConsumerSettings) -> Flow[Consumer]:
    """
    Add an HTTP pull consumer to the queue named; settings left ``None`` take the service's defaults.
    When an answer was lost and the resend finds a consumer there, the lost attempt added it: that one
    is returned.
    """
    body = ConsumerRequest(dead_letter_queue=settings.dlq() or None, settings=settings.wire())
    target = yield from resolve_named_queue(ctx, queue, "create_consumer")
    record = CallRecord()
    try:
        envelope = yield from on_queue(
            ctx, target=target, build=lambda qid: create_consumer_request(ctx.account_id, qid, body), record=record
        )
    except CloudflareQueuesApiError as err:
        if not (record.resent_after_unknown and err.status in (400, 409)):
            raise
        ctx.log.warning("Adding a consumer to queue %s: an answer was lost and the resend found one (%s)", queue, err)
        found = _pull_consumer(
            (yield from list_consumers(ctx, queue=target.queue_id)), None, target.ref, "create_consumer"
        )
        return found
    consumer: Consumer = required(envelope, "create_consumer")
    return consumer


def _pull_consumer(consumers: list[Consumer], consumer_id: str | None, queue: str, operation: str) -> Consumer:
    """The queue's HTTP pull consumer, or the consumer ``consumer_id``, or a not-found error saying so."""
    for consumer in consumers:
        if consumer.consumer_id == consumer_id or (consumer_id is None and consumer.type == "http_pull"):
            return consumer
    raise CloudflareQueuesNotFoundError(
        f"queue {queue} has no {'consumer ' + consumer_id if consumer_id else 'HTTP pull consumer'}",
        status=404,
        operation=operation,
        hint=f"add one: `npx wrangler queues consumer http add {queue}` (or CloudflareQueuesCreateQueueOperator)",
    )


def update_consumer(
    ctx: FlowContext, *, queue: str, consumer_id: str | None, settings: ConsumerSettings
) -> Flow[Consumer]:
    """
    Change the given settings of the queue's HTTP pull consumer (``consumer_id``, or the queue's one);
    the others stay. The service replaces a consumer whole (``PUT``), so the current consumer is read,
    the settings not given are sent back unchanged, and the consumer is read again just before the
    ``PUT``: when it changed in between (another update), nothing is sent and the call fails, rather
    than silently undoing that change. A consumer that is not an HTTP pull consumer (a Worker) is
    refused: replacing it here would detach its Worker.
    """
    changes = settings.wire()
    dlq = settings.dlq()
    target = yield from resolve_named_queue(ctx, queue, "update_consumer")
    current = _pull_consumer(
        (yield from list_consumers(ctx, queue=target.queue_id)), consumer_id, target.ref, "update_consumer"
    )
    if current.type != "http_pull":
        raise CloudflareQueuesValidationError(
            f"consumer {current.consumer_id} of queue {target.ref} is a {current.type!r} consumer"
            f"{f' (script {current.script_name!r})' if current.script_name else ''}: update_consumer changes HTTP pull "
            "consumers only (replacing a Worker consumer with these settings would detach the Worker); change it "
            "with wrangler instead",
            operation="update_consumer",
        )
    merged = ConsumerSettingsRequest.model_validate(
        {
            key: value
            for key, value in {
                **current.settings.model_dump(include=set(ConsumerSettingsRequest.model_fields)),
                **changes.model_dump(exclude_none=True),
            }.items()
            if value is not None
        }
    )
    body = ConsumerRequest(dead_letter_queue=(current.dead_letter_queue or "") if dlq is None else dlq, settings=merged)
    assert current.consumer_id is not None
    consumer_id = current.consumer_id
    again = _pull_consumer(
        (yield from list_consumers(ctx, queue=target.queue_id)), consumer_id, target.ref, "update_consumer"
    )
    if _state(again) != _state(current):
        raise CloudflareQueuesConflictError(
            f"consumer {consumer_id} of queue {target.ref} changed while it was being updated (from {_state(current)} "
            f"to {_state(again)}): nothing was sent, so that the other change is not undone. Retry to apply these "
            "settings on top of it",
            operation="update_consumer",
        )
    envelope = yield from on_queue(
        ctx, target=target, build=lambda qid: replace_consumer_request(ctx.account_id, qid, consumer_id, body)
    )
    consumer: Consumer = required(envelope, "update_consumer")
    return consumer


def _state(consumer: Consumer) -> dict[str, object]:
    """What an update reads back unchanged: the consumer's settings and dead-letter queue."""
    return {
        "dead_letter_queue": consumer.dead_letter_queue or "",
        **consumer.settings.model_dump(include=set(ConsumerSettingsRequest.model_fields), exclude_none=True),
    }


def delete_consumer(ctx: FlowContext, *, queue: str, consumer_id: str | None) -> Flow[str]:
    """Remove a consumer of the queue named (``consumer_id``, or its HTTP pull one); returns its id."""
    target = yield from resolve_named_queue(ctx, queue, "delete_consumer")
    consumers = yield from list_consumers(ctx, queue=target.queue_id)
    current = _pull_consumer(consumers, consumer_id, target.ref, "delete_consumer")
    assert current.consumer_id is not None
    removed = current.consumer_id
    yield from _delete(ctx, target, lambda qid: delete_consumer_request(ctx.account_id, qid, removed))
    return removed


def _delete(ctx: FlowContext, target: QueueTarget, build: Callable[[str], ApiRequest]) -> Flow[None]:
    """Send a ``DELETE``; a 404 after an attempt whose answer was lost means that attempt deleted it."""
    record = CallRecord()
    try:
        yield from on_queue(ctx, target=target, build=build, record=record)
    except CloudflareQueuesNotFoundError:
        if not record.resent_after_unknown:
            raise
