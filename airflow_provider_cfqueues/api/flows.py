"""
The client's behaviour, written once for the sync and the async paths.

Each public operation is a generator ("flow") that yields *effects* — :class:`Send` a request, or
:class:`Sleep` before a retry — and receives the answers. It validates input, resolves queue names,
retries, splits work into requests and builds the results; it never touches a socket. The hook runs
flows with a ``requests`` transport (sync) or an ``httpx`` one (async); the two runners differ only
in the lines that do I/O.
"""

from __future__ import annotations

import difflib
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import units
from .errors import (
    FREE_PLAN_OPERATIONS_CODE,
    TRANSIENT_CODES,
    CloudflareQueuesAckError,
    CloudflareQueuesApiError,
    CloudflareQueuesAuthError,
    CloudflareQueuesConfigError,
    CloudflareQueuesError,
    CloudflareQueuesNotFoundError,
    CloudflareQueuesPushError,
    CloudflareQueuesRateLimitError,
    CloudflareQueuesResponseError,
    CloudflareQueuesStaleNameError,
    CloudflareQueuesValidationError,
)
from .limits import LIST_QUEUES_PER_PAGE, MAX_LIST_PAGES
from .models import (
    AckAnswer,
    AckResult,
    Consumer,
    Envelope,
    PeekAnswer,
    PeekedMessage,
    PeekResult,
    PullAnswer,
    PulledMessage,
    PullResult,
    PurgeMessagesAnswer,
    PurgeMessagesResult,
    PushAnswer,
    PushResult,
    Queue,
    QueueMetrics,
)
from .operations import (
    ApiRequest,
    RawResponse,
    ack_requests,
    answered_at_ms,
    get_queue_request,
    is_queue_id,
    lease_texts,
    list_consumers_request,
    list_queues_request,
    metrics_request,
    normalize_acks,
    normalize_refs,
    normalize_retries,
    parse_response,
    peek_request,
    pull_request,
    purge_messages_requests,
    validate_queue,
)
from .push_packing import prepare_message, prepare_messages, push_message_request, push_requests
from .retry import RetryPolicy
from .throttle import Throttle

T = TypeVar("T")


@dataclass(frozen=True)
class Send:
    """Effect: send this request and resume with its :class:`RawResponse` (or a transport error)."""

    request: ApiRequest


@dataclass(frozen=True)
class Sleep:
    """Effect: wait this many seconds, then resume."""

    seconds: float


Flow = Generator[Send | Sleep, Any, T]


#: how long a queue name's id is trusted without asking the service again (seconds)
NAME_CACHE_SECONDS = 300.0


class QueueNameCache:
    """
    Queue name -> id, per API base URL and account; shared by every hook in the process. An entry
    expires after ``ttl`` seconds (a triggerer runs for weeks, and queues get renamed and re-created);
    it is dropped sooner when its id answers 404 or no longer carries the name.

    :param ttl: seconds an entry is trusted.
    :param monotonic: the clock (tests inject one).
    """

    def __init__(self, ttl: float = NAME_CACHE_SECONDS, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._monotonic = monotonic
        self._ids: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, scope: str, account_id: str, name: str) -> str | None:
        key = (scope, account_id, name)
        with self._lock:
            entry = self._ids.get(key)
            if entry is None:
                return None
            if entry[1] <= self._monotonic():
                del self._ids[key]
                return None
            return entry[0]

    def put(self, scope: str, account_id: str, name: str, queue_id: str) -> None:
        with self._lock:
            self._ids[(scope, account_id, name)] = (queue_id, self._monotonic() + self.ttl)

    def forget(self, scope: str, account_id: str, name: str) -> None:
        with self._lock:
            self._ids.pop((scope, account_id, name), None)

    def forget_all(self) -> None:
        """Drop every cached name (a test suite starting a test afresh)."""
        with self._lock:
            self._ids.clear()

    def forget_scope(self, scope: str) -> None:
        """Drop every name cached for one API base URL (an emulator on a port an earlier one used)."""
        with self._lock:
            for key in [key for key in self._ids if key[0] == scope]:
                del self._ids[key]


QUEUE_NAMES = QueueNameCache()


@dataclass
class FlowContext:
    """
    What every flow needs besides its arguments.

    :param account_id: the validated account id.
    :param scope: the API base URL (queue names are cached per base URL and account).
    :param default_queue: the queue used when an operation names none.
    :param retry: the retry policy.
    :param names: the queue name cache.
    :param throttle: the token's shared budget (waits before sending; ``None``: never waits).
    """

    account_id: str
    scope: str
    default_queue: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    names: QueueNameCache = QUEUE_NAMES
    throttle: Throttle | None = None
    monotonic: Callable[[], float] = time.monotonic
    # a logging.Logger, or the structlog logger of an Airflow hook
    log: Any = field(default_factory=lambda: logging.getLogger("airflow_provider_cfqueues"))


@dataclass
class CallRecord:
    """
    How a call went, for operations whose answer depends on it.

    :param resent_after_unknown: the request was sent again after an attempt whose outcome is unknown
        (no answer): the final answer may describe a state the lost attempt already changed.
    :param headers: the headers of the answer the call returned.
    """

    resent_after_unknown: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def server_time_ms(self) -> int | None:
        """When the service answered, by its clock (its ``Date`` header), if it said."""
        return answered_at_ms(self.headers)


def call(ctx: FlowContext, request: ApiRequest, record: CallRecord | None = None) -> Flow[Envelope[Any]]:
    """
    Send ``request`` and parse the answer, retrying transient failures as the policy allows. Before
    each attempt it waits as long as the token's budget says (a block after a 429 elsewhere in the
    process, or pacing when the budget runs low).
    """
    started = ctx.monotonic()
    attempt = 0
    block_served = False  # this request just waited out a rate limit's Retry-After itself
    while True:
        attempt += 1
        if ctx.throttle is not None:
            pause = ctx.throttle.wait_before(request.operation, block_served=block_served)
            if pause > ctx.retry.max_retry_wait:
                raise CloudflareQueuesRateLimitError(
                    f"the API token is blocked for another {pause:.0f} s (its rate limit), more than "
                    f"max_retry_wait={ctx.retry.max_retry_wait:g} s; nothing was sent",
                    status=429,
                    operation=request.operation,
                    retry_after=pause,
                )
            if pause > 0:
                if pause >= 1:
                    ctx.log.info(
                        "Cloudflare Queues %s waits %.1f s for the API token's budget", request.operation, pause
                    )
                yield Sleep(pause)
        try:
            response: RawResponse = yield Send(request)
            if ctx.throttle is not None:
                ctx.throttle.observe(response.headers)
            envelope = parse_response(request, response)
            if record is not None:
                record.headers = response.headers
            return envelope
        except CloudflareQueuesError as err:
            if record is not None and err.outcome_unknown:
                record.resent_after_unknown = True
            if isinstance(err, CloudflareQueuesRateLimitError) and _blocks_the_token(err) and ctx.throttle is not None:
                ctx.throttle.block(err.retry_after or 0)  # every request of this token waits, not only this one
            delay = ctx.retry.next_delay(attempt, err, ctx.monotonic() - started)
            if delay is None:
                raise _explained(err, attempt, ctx.retry.max_retry_wait) from None
            ctx.log.warning(
                "Cloudflare Queues %s failed (attempt %d of %d): %s; retrying in %.2f s",
                request.operation,
                attempt,
                ctx.retry.max_attempts,
                err,
                delay,
            )
            block_served = _blocks_the_token(err)
            yield Sleep(delay)


def _blocks_the_token(err: CloudflareQueuesError) -> bool:
    """A 429 of the API's rate limit (not a queue's own overload, codes 10250-10253) blocks the token."""
    return (
        isinstance(err, CloudflareQueuesRateLimitError)
        and err.status == 429
        and err.retry_after is not None
        and not set(err.codes) & TRANSIENT_CODES
    )


def _explained(err: CloudflareQueuesError, attempts: int, max_retry_wait: float) -> CloudflareQueuesError:
    """The error a flow gives up with, saying why when it is not obvious."""
    retry_after = err.retry_after if isinstance(err, CloudflareQueuesApiError) else None
    if isinstance(err, CloudflareQueuesRateLimitError) and retry_after is not None and retry_after > max_retry_wait:
        if FREE_PLAN_OPERATIONS_CODE in err.codes:
            hint = (
                "the account's Free plan allows 10,000 operations a day (each message written, read or deleted); "
                "they come back at 00:00 UTC. A paid plan lifts the limit"
            )
        else:
            hint = (
                "raise the connection's max_retry_wait extra, or send fewer requests with this account's tokens "
                "(1,200 per 5 minutes per user; pulls and acks do not count)"
            )
        return CloudflareQueuesRateLimitError(
            f"{err.detail}; the service asks to wait {retry_after:.0f} s, more than max_retry_wait="
            f"{max_retry_wait:g} s",
            status=err.status,
            errors=err.errors,
            operation=err.operation,
            hint=hint,
            retry_after=retry_after,
        )
    if attempts > 1:
        err.add_note(f"gave up after {attempts} attempts")
    return err


def run(flow: Flow[T], send: Callable[[ApiRequest], RawResponse], sleep: Callable[[float], None]) -> T:
    """Drive ``flow`` synchronously: ``send`` does the HTTP, ``sleep`` waits between retries."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.throw(error) if error is not None else flow.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        value = error = None
        if isinstance(effect, Sleep):
            sleep(effect.seconds)
            continue
        try:
            value = send(effect.request)
        except CloudflareQueuesError as err:
            error = err


async def arun(
    flow: Flow[T], send: Callable[[ApiRequest], Awaitable[RawResponse]], sleep: Callable[[float], Awaitable[None]]
) -> T:
    """Drive ``flow`` in an event loop: the same as :func:`run`, awaiting the I/O."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.throw(error) if error is not None else flow.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        value = error = None
        if isinstance(effect, Sleep):
            await sleep(effect.seconds)
            continue
        try:
            value = await send(effect.request)
        except CloudflareQueuesError as err:
            error = err


# -- queues ----------------------------------------------------------------------------------------


@dataclass
class QueueTarget:
    """A queue as the user named it, and its id (from the name cache when ``from_cache``)."""

    ref: str
    queue_id: str
    from_cache: bool = False


def resolve_queue(ctx: FlowContext, queue: str | None) -> Flow[QueueTarget]:
    """The id of ``queue`` (an id or a name; the context's default when ``None``)."""
    if queue is None:
        if ctx.default_queue is None:
            raise CloudflareQueuesConfigError(
                "no queue given: pass queue=<id or name>, or set the 'queue' extra of the connection"
            )
        queue = ctx.default_queue
    ref = validate_queue(queue)
    if is_queue_id(ref):
        return QueueTarget(ref, ref)
    cached = ctx.names.get(ctx.scope, ctx.account_id, ref)
    if cached is not None:
        return QueueTarget(ref, cached, from_cache=True)
    queue_id = yield from _lookup_name(ctx, ref)
    return QueueTarget(ref, queue_id)


def resolve_named_queue(ctx: FlowContext, queue: str | None, operation: str) -> Flow[QueueTarget]:
    """
    The queue a destructive ``operation`` acts on: ``queue`` exactly as given — never the context's
    default, never an empty name — and, when a name was resolved from the cache, only once the service
    confirms that the id still carries that name. An id that answers 404 is looked up again by name;
    an id that now carries another name (renamed since it was cached) fails the call, naming both, and
    is dropped from the cache, so that a retry acts on the queue that carries the name now.
    """
    if queue is None or not isinstance(queue, str) or not queue.strip():
        raise CloudflareQueuesValidationError(
            f"{operation} acts only on the queue it is given, never on a default one: queue is {queue!r}; "
            "name the queue (its id or name)"
        )
    target = yield from resolve_queue(ctx, queue)
    if not target.from_cache:
        return target  # an id as given, or a name just looked up by the service
    try:
        envelope = yield from call(ctx, get_queue_request(ctx.account_id, target.queue_id))
    except CloudflareQueuesNotFoundError:
        ctx.names.forget(ctx.scope, ctx.account_id, target.ref)
        return QueueTarget(target.ref, (yield from _lookup_name(ctx, target.ref)))
    current: Queue = required(envelope, "get_queue")
    if current.queue_name != target.ref:
        ctx.names.forget(ctx.scope, ctx.account_id, target.ref)
        raise CloudflareQueuesStaleNameError(
            f"queue {target.ref!r} was known as id {target.queue_id}, which is now named {current.queue_name!r} "
            f"(renamed since it was looked up); nothing was done to either. Retry to act on the queue named "
            f"{target.ref!r} now",
            operation=operation,
        )
    target.from_cache = False  # confirmed: a 404 from now on means the queue went away, not a stale name
    return target


def _lookup_name(ctx: FlowContext, name: str) -> Flow[str]:
    """The id of the queue named ``name``: asks the service to filter by name, and reads on through the
    pages in case it does not."""
    for page in range(1, MAX_LIST_PAGES + 1):
        queues, full = yield from _list_page(ctx, page, name)
        match = next((q.queue_id for q in queues if q.queue_name == name), None)
        if match is not None:
            return match
        if not full:
            break
    close = yield from _close_names(ctx, name)
    if close:
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?"
    else:
        hint = f"check the name and the account id, or create the queue (`npx wrangler queues create {name}`)"
    raise CloudflareQueuesNotFoundError(
        f"there is no queue named {name!r} in account {ctx.account_id}",
        status=404,
        operation="resolve_queue",
        hint=hint,
    )


def _close_names(ctx: FlowContext, name: str) -> Flow[list[str]]:
    """The account's queue names close to ``name`` (a typo, another case), best first; read only when a
    name was not found, and nothing when the list cannot be read."""
    try:
        queues = yield from list_queues(ctx)
    except CloudflareQueuesError:
        return []
    names = [queue.queue_name for queue in queues]
    same_but_case = [n for n in names if n.lower() == name.lower()]
    return same_but_case or difflib.get_close_matches(name, names, n=3, cutoff=0.6)


def _list_page(ctx: FlowContext, page: int, name: str | None = None) -> Flow[tuple[list[Queue], bool]]:
    """One page of the account's queues, and whether it is full (another may follow: a page shorter
    than the page size the answer states, or than the one asked for, is the last); refreshes the
    name cache. ``result_info.total_pages`` is not relied on: the service does not always send it."""
    envelope = yield from call(ctx, list_queues_request(ctx.account_id, page, name))
    queues: list[Queue] = envelope.result or []
    for queue in queues:
        ctx.names.put(ctx.scope, ctx.account_id, queue.queue_name, queue.queue_id)
    info = envelope.result_info
    page_size = info.per_page if info is not None and info.per_page else LIST_QUEUES_PER_PAGE
    return queues, bool(queues) and len(queues) >= page_size


def on_queue(
    ctx: FlowContext, *, target: QueueTarget, build: Callable[[str], ApiRequest], record: CallRecord | None = None
) -> Flow[Envelope[Any]]:
    """Call ``build(queue_id)``; when a cached name answers 404, look the name up again once."""
    try:
        return (yield from call(ctx, build(target.queue_id), record))
    except CloudflareQueuesNotFoundError:
        if not target.from_cache:
            raise
    ctx.names.forget(ctx.scope, ctx.account_id, target.ref)
    target.queue_id = yield from _lookup_name(ctx, target.ref)
    target.from_cache = False
    return (yield from call(ctx, build(target.queue_id), record))


def required(envelope: Envelope[Any], operation: str) -> Any:
    """The envelope's ``result``; a successful answer without one is an error, never a default
    (metrics of zeros would satisfy ``max_backlog=0``)."""
    if envelope.result is None:
        raise CloudflareQueuesResponseError("a successful answer without a result", operation=operation)
    return envelope.result


def _metrics(answer: PushAnswer | PullAnswer | None) -> QueueMetrics | None:
    return answer.metadata.metrics if answer is not None and answer.metadata is not None else None


# -- operations ------------------------------------------------------------------------------------


def push_message(
    ctx: FlowContext, *, body: object, queue: str | None, content_type: str | None, delay_seconds: object
) -> Flow[PushResult]:
    prepared = prepare_message(0, body, content_type, delay_seconds)
    target = yield from resolve_queue(ctx, queue)
    envelope = yield from on_queue(
        ctx, target=target, build=lambda qid: push_message_request(ctx.account_id, qid, prepared)
    )
    return PushResult(queue_id=target.queue_id, messages=1, requests=1, metrics=_metrics(envelope.result))


def push_messages(
    ctx: FlowContext,
    *,
    messages: Iterable[object],
    queue: str | None,
    delay_seconds: object,
    content_type: str | None,
    preserve_order: bool,
) -> Flow[PushResult]:
    """Validate every message, then push them in the fewest requests; see :class:`CloudflareQueuesPushError`."""
    delay = units.delay_seconds(delay_seconds)
    prepared = prepare_messages(messages, content_type)
    if not prepared:
        return PushResult(queue_id=None, messages=0, requests=0)
    steps = push_requests(ctx.account_id, prepared, delay, preserve_order=preserve_order)
    target = yield from resolve_queue(ctx, queue)
    pushed: list[int] = []
    metrics: QueueMetrics | None = None
    for n, step in enumerate(steps):
        try:
            envelope = yield from on_queue(ctx, target=target, build=step.build)
        except CloudflareQueuesError as err:
            if not pushed and not err.outcome_unknown:
                raise  # nothing was enqueued: the plain error says it all
            raise CloudflareQueuesPushError(
                pushed=pushed,
                failed=step.indices,
                not_sent=[i for later in steps[n + 1 :] for i in later.indices],
                requests=n,
                cause=err,
            ) from err
        pushed.extend(step.indices)
        metrics = _metrics(envelope.result) or metrics
    ctx.log.info(
        "Pushed %d message(s) to queue %s in %d request(s)%s",
        len(pushed),
        target.ref,
        len(steps),
        f"; backlog {metrics.backlog_count}" if metrics else "",
    )
    return PushResult(queue_id=target.queue_id, messages=len(pushed), requests=len(steps), metrics=metrics)


def pull_messages(
    ctx: FlowContext, *, queue: str | None, batch_size: object, visibility_timeout: object
) -> Flow[PullResult]:
    size = units.batch_size(batch_size)  # checked before anything is sent
    lease = units.lease_seconds(visibility_timeout)
    target = yield from resolve_queue(ctx, queue)
    envelope = yield from on_queue(ctx, target=target, build=lambda qid: pull_request(ctx.account_id, qid, size, lease))
    answer: PullAnswer = required(envelope, "pull")
    metrics = _metrics(answer)
    backlog = answer.message_backlog_count
    if backlog is None and metrics is not None:
        backlog = metrics.backlog_count
    return PullResult(
        queue_id=target.queue_id,
        messages=[PulledMessage.from_wire(m) for m in answer.messages],
        backlog_count=backlog,
        metrics=metrics,
    )


def peek_messages(ctx: FlowContext, *, queue: str | None, batch_size: object) -> Flow[PeekResult]:
    """Up to ``batch_size`` messages, not leased: no delivery attempt is spent, and they stay available."""
    size = units.batch_size(batch_size)
    target = yield from resolve_queue(ctx, queue)
    envelope = yield from on_queue(ctx, target=target, build=lambda qid: peek_request(ctx.account_id, qid, size))
    answer: PeekAnswer = required(envelope, "peek")
    return PeekResult(queue_id=target.queue_id, messages=[PeekedMessage.from_wire(m) for m in answer.messages])


def purge_messages(ctx: FlowContext, *, queue: str, refs: object) -> Flow[PurgeMessagesResult]:
    """
    Delete the messages a peek showed, by their refs, from the queue named (never a default one). A
    purge does not count as a delivery. A ref the service warns about (unknown, or its message was
    delivered or purged since the peek) is not counted as purged; nothing is guessed. A ref given twice
    is sent once and listed in ``duplicates``; an empty list purges nothing once the queue is confirmed.
    """
    given = normalize_refs(refs)
    wanted = list(dict.fromkeys(given))  # each ref once: the service would warn about the second
    duplicates = [ref for ref in wanted if given.count(ref) > 1]
    target = yield from resolve_named_queue(ctx, queue, "purge_messages")  # an empty list confirms the queue too
    requests_ = purge_messages_requests(ctx.account_id, target.queue_id, wanted)
    result = PurgeMessagesResult(requests=len(requests_), duplicates=duplicates)
    for request in requests_:
        envelope = yield from call(ctx, request)
        answer = envelope.result or PurgeMessagesAnswer()
        result.warnings.update(answer.warnings)
        result.errors.extend(answer.errors)
    result.purged = sum(ref not in result.warnings for ref in wanted)
    if result.warnings:
        ctx.log.warning(
            "Purge on queue %s: %d of %d ref(s) not purged: %s",
            target.ref,
            len(result.warnings),
            len(wanted),
            "; ".join(f"{ref[-12:]}: {why}" for ref, why in list(result.warnings.items())[:10]),
        )
    return result


@dataclass
class Collected:
    """
    What :func:`collect_messages` gathered.

    :param messages: the leased messages, in the order pulled.
    :param queue_id: the queue's id (``None`` when no pull answered).
    :param batches: pulls that returned messages.
    :param backlog_count: the backlog the last pull reported.
    :param error: the error that ended the collection early (the messages pulled before it are kept,
        still leased): the caller decides whether to use them or give them back.
    """

    messages: list[PulledMessage] = field(default_factory=list)
    queue_id: str | None = None
    batches: int = 0
    backlog_count: int | None = None
    error: CloudflareQueuesError | None = None


def collect_messages(
    ctx: FlowContext,
    *,
    queue: str | None,
    batch_size: int,
    max_messages: int,
    visibility_timeout: object,
    enough: Callable[[list[PulledMessage]], bool] | None = None,
) -> Flow[Collected]:
    """
    Pull until ``max_messages`` are leased, a pull comes back empty, or ``enough(messages)`` says so
    (checked after each pull); keep every lease. An error of a pull ends the collection without
    raising: it is returned with what was pulled before, for the caller to use or give back.
    """
    collected = Collected()
    units.batch_size(batch_size)
    units.lease_seconds(visibility_timeout)  # bad input raises before anything is sent
    while len(collected.messages) < max_messages:
        wanted = min(batch_size, max_messages - len(collected.messages))
        try:
            result = yield from pull_messages(
                ctx, queue=queue, batch_size=wanted, visibility_timeout=visibility_timeout
            )
        except CloudflareQueuesError as err:
            collected.error = err
            break
        collected.queue_id = result.queue_id
        collected.backlog_count = result.backlog_count
        if not result.messages:
            break
        collected.batches += 1
        collected.messages.extend(result.messages)
        if enough is not None and enough(collected.messages):
            break
    return collected


def ack_messages(
    ctx: FlowContext, *, queue: str | None, acks: Iterable[object], retries: Iterable[object]
) -> Flow[AckResult]:
    """Acknowledge and retry leases in as few requests as allowed; see :class:`CloudflareQueuesAckError`."""
    ack_ids = normalize_acks(acks)
    retry_items = normalize_retries(retries)
    if not ack_ids and not retry_items:
        return AckResult()
    steps = ack_requests(ctx.account_id, ack_ids, retry_items)
    target = yield from resolve_queue(ctx, queue)
    result = AckResult()
    acked: list[str] = []
    retried: list[str] = []
    for n, step in enumerate(steps):
        record = CallRecord()
        try:
            envelope = yield from on_queue(ctx, target=target, build=step.build, record=record)
        except CloudflareQueuesError as err:
            if n == 0 and not err.outcome_unknown:
                raise  # nothing was applied
            raise CloudflareQueuesAckError(
                acked=acked,
                retried=retried,
                failed=[*step.acks, *(lease for lease, _ in step.retries)],
                not_sent=[lease for later in steps[n + 1 :] for lease in (*later.acks, *(x for x, _ in later.retries))],
                cause=err,
            ) from err
        answer: AckAnswer = envelope.result or AckAnswer.model_validate({})
        result.ack_count += answer.ack_count
        result.retry_count += answer.retry_count
        result.warnings.update(answer.warnings)
        retry_leases = [lease for lease, _ in step.retries]
        missed = _not_applied(step.acks, answer.ack_count, answer.warnings, "acknowledged")
        missed.update(_not_applied(retry_leases, answer.retry_count, answer.warnings, "retried"))
        if record.resent_after_unknown:  # an unanswered attempt may have applied them: they are unknown
            result.unconfirmed.update(
                {
                    lease: f"{why} (after an attempt that got no answer and may have applied it)"
                    for lease, why in missed.items()
                }
            )
        else:
            result.not_applied.update(missed)
        acked.extend(lease for lease in step.acks if lease not in missed)
        retried.extend(lease for lease in retry_leases if lease not in missed)
    result.requests = len(steps)
    if result.warnings:
        ctx.log.warning(
            "Ack on queue %s returned %d warning(s): %s", target.ref, len(result.warnings), lease_texts(result.warnings)
        )
    return result


#: how the service words a warning about a lease that an earlier request already settled
_ALREADY = {
    "acknowledged": re.compile(r"already\s+(acked|acknowledged)", re.I),
    "retried": re.compile(r"already\s+retried", re.I),
}


def _not_applied(leases: Sequence[str], applied: int, warnings: Mapping[str, str], verb: str) -> dict[str, str]:
    """
    The leases of one request that the service did not confirm as applied. The answer counts what it
    applied and warns per lease; a warning alone does not mean "not applied" (a late ack is applied
    and warned about), so the counts decide: when exactly the warned leases are missing, they are
    the ones; when the counts cannot tell which, every lease that may be missing is listed. A lease
    the service says was already acknowledged (or retried) is settled: acking twice is harmless, and
    a task retried after a partial failure must not fail on what its first try did.
    """
    settled = [lease for lease in leases if _ALREADY[verb].search(warnings.get(lease, ""))]
    pending = [lease for lease in leases if lease not in settled]
    missing = len(pending) - applied
    if missing <= 0:
        return {}
    warned = [lease for lease in pending if lease in warnings]
    suspects = warned if len(warned) >= missing else pending
    fallback = f"the service {verb} {applied} of the {len(pending)} lease(s) sent without saying which"
    return {lease: warnings.get(lease, fallback) for lease in suspects}


def get_metrics(ctx: FlowContext, *, queue: str | None) -> Flow[QueueMetrics]:
    """The queue's metrics, with when the service answered (for ages: see :class:`QueueMetrics`)."""
    target = yield from resolve_queue(ctx, queue)
    record = CallRecord()
    envelope = yield from on_queue(
        ctx, target=target, build=lambda qid: metrics_request(ctx.account_id, qid), record=record
    )
    metrics: QueueMetrics = required(envelope, "metrics")
    return metrics.observed_at(record.server_time_ms)


def get_queue(ctx: FlowContext, *, queue: str | None) -> Flow[Queue]:
    target = yield from resolve_queue(ctx, queue)
    envelope = yield from on_queue(ctx, target=target, build=lambda qid: get_queue_request(ctx.account_id, qid))
    found: Queue = required(envelope, "get_queue")
    return found


def list_consumers(ctx: FlowContext, *, queue: str | None) -> Flow[list[Consumer]]:
    target = yield from resolve_queue(ctx, queue)
    envelope = yield from on_queue(ctx, target=target, build=lambda qid: list_consumers_request(ctx.account_id, qid))
    return list(envelope.result or [])


def list_queues(ctx: FlowContext) -> Flow[list[Queue]]:
    """Every queue of the account: pages are read until one comes back short (the service does not
    always say how many pages there are); also refreshes the name cache."""
    queues: list[Queue] = []
    for page in range(1, MAX_LIST_PAGES + 1):
        batch, full = yield from _list_page(ctx, page)
        queues.extend(batch)
        if not full:
            return queues
    raise CloudflareQueuesResponseError(
        f"the queue list did not end after {MAX_LIST_PAGES} pages of {LIST_QUEUES_PER_PAGE}", operation="list_queues"
    )


def check_connection(ctx: FlowContext, *, queue: str | None) -> Flow[tuple[bool, str]]:
    """
    ``(ok, message)``: checks the token and the account, and, when a queue is set, that it exists and
    has an HTTP pull consumer. Messages say how to fix what is wrong.
    """
    account = ctx.account_id
    try:
        if queue is None and ctx.default_queue is None:
            queues = yield from list_queues(ctx)
            return True, (
                f"Connected to account {account}: {len(queues)} queue(s). No default queue is set "
                "(optional 'queue' extra)."
            )
        queue_info = yield from get_queue(ctx, queue=queue)
    except CloudflareQueuesAuthError as err:
        return False, (
            f"The API token was refused for account {account} ({err.detail}). Use a token with the "
            "Queues Edit permission on this account, and check the account id."
        )
    except CloudflareQueuesNotFoundError as err:
        return False, f"Queue not found: {err.detail}. Fix: {err.hint}"
    except CloudflareQueuesError as err:
        return False, f"Connection test failed: {err}"
    name = queue_info.queue_name
    if queue_info.http_pull_consumer is None:
        return False, (
            f"Queue '{name}' ({queue_info.queue_id}) exists but has no HTTP pull consumer, so it cannot be "
            f"pulled. Fix: `npx wrangler queues consumer http add {name}`."
        )
    return True, f"Connected: queue '{name}' ({queue_info.queue_id}) in account {account} has an HTTP pull consumer."
