"""What a drain is asked to do (:class:`DrainPlan`) and what it did (:class:`DrainSummary`)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from typing_extensions import TypedDict

from .attempts import DEFAULT_BACKOFF, MessageRetryDelay

#: the longest list of failed message ids kept in the XCom summary
MAX_FAILED_IDS_IN_XCOM = 100
#: how many of the last ``process`` errors the summary keeps (for the task's error)
LAST_ERRORS_KEPT = 5
#: ``max_consecutive_failures`` by default
DEFAULT_MAX_CONSECUTIVE_FAILURES = 10


class DrainResult(TypedDict):
    """
    What :class:`~airflow_provider_cfqueues.operators.consume.CloudflareQueuesPullAndAckOperator`
    returns to XCom: the counts of one run.

    :param pulled: deliveries to this run (a message pulled twice counts twice).
    :param acked: messages acknowledged (processed, or routed as poison).
    :param retried: failed messages given back that come back after their retry delay.
    :param failed: messages whose ``process`` failed and that were not routed as poison, each once.
    :param poisoned: messages routed as poison (``on_poison``) after ``max_attempts``: handled, not failed.
    :param rejected: messages ``process`` rejected (``RejectMessage``), routed at once to ``on_poison``
        or the consumer's dead-letter queue: handled, not failed.
    :param released: messages given back unprocessed; each release spends a delivery attempt.
    :param dead_lettered: failed messages on their last delivery: the service moved them to the
        consumer's dead-letter queue.
    :param deleted: failed messages on their last delivery without a dead-letter queue: deleted.
    :param batches: pulls that returned messages.
    :param ack_warnings: warnings the API returned for acks and retries.
    :param failed_ids: ids of the failed messages (at most 100).
    :param failed_ids_truncated: more than 100 failed.
    :param backlog_after: the queue's backlog after the last ack (``None`` when it could not be read).
    :param untouched: of that backlog, the messages this run never pulled: they kept all their
        delivery attempts (as approximate as Cloudflare's metrics).
    :param stop_reason: why the run stopped.
    """

    pulled: int
    acked: int
    retried: int
    failed: int
    poisoned: int
    rejected: int
    released: int
    dead_lettered: int
    deleted: int
    batches: int
    ack_warnings: int
    failed_ids: list[str]
    failed_ids_truncated: bool
    backlog_after: int | None
    untouched: int | None
    stop_reason: str


@dataclass
class DrainSummary:
    """
    What one drain did, counted while it runs (the fields of :class:`DrainResult`, which
    :meth:`to_xcom` returns, and of the run's log lines).

    :param last_errors: the last ``process`` errors, as ``message id: error``.
    :param tripped: the run stopped because ``max_consecutive_failures`` messages failed in a row.
    :param interrupted: the run was stopped from outside (task timeout, kill).
    """

    pulled: int = 0
    acked: int = 0
    retried: int = 0
    failed: int = 0
    poisoned: int = 0
    rejected: int = 0
    released: int = 0
    dead_lettered: int = 0
    deleted: int = 0
    batches: int = 0
    ack_warnings: int = 0
    failed_ids: list[str] = field(default_factory=list)
    last_errors: deque[str] = field(default_factory=lambda: deque(maxlen=LAST_ERRORS_KEPT))
    backlog_after: int | None = None
    untouched: int | None = None
    stop_reason: str = ""
    tripped: bool = False
    interrupted: bool = False

    def describe(self) -> str:
        """The counts in words, for logs and errors."""
        parts = [f"pulled {self.pulled}", f"acked {self.acked}"]
        if self.failed:
            fates = [f"{self.retried} retried"]
            if self.dead_lettered:
                fates.append(f"{self.dead_lettered} on their last delivery, moved to the dead-letter queue")
            if self.deleted:
                fates.append(f"{self.deleted} on their last delivery, deleted by the service")
            parts.append(f"failed {self.failed} ({', '.join(fates)})")
        if self.poisoned:
            parts.append(f"routed {self.poisoned} as poison")
        if self.rejected:
            parts.append(f"rejected {self.rejected} (routed at once)")
        if self.released:
            parts.append(f"gave back {self.released} unprocessed (one delivery attempt each)")
        return ", ".join(parts)

    def to_xcom(self) -> DrainResult:
        """The operator's result."""
        return DrainResult(
            pulled=self.pulled,
            acked=self.acked,
            retried=self.retried,
            failed=self.failed,
            poisoned=self.poisoned,
            rejected=self.rejected,
            released=self.released,
            dead_lettered=self.dead_lettered,
            deleted=self.deleted,
            batches=self.batches,
            ack_warnings=self.ack_warnings,
            failed_ids=self.failed_ids[:MAX_FAILED_IDS_IN_XCOM],
            failed_ids_truncated=len(self.failed_ids) > MAX_FAILED_IDS_IN_XCOM,
            backlog_after=self.backlog_after,
            untouched=self.untouched,
            stop_reason=self.stop_reason,
        )


@dataclass
class DrainPlan:
    """
    How to drain (the operator's arguments, validated).

    :param batch_size: the largest pull.
    :param max_messages: stop after this many messages (all workers together).
    :param max_batches: stop after this many pulls (all workers together).
    :param visibility_timeout: lease duration in seconds.
    :param concurrency: workers.
    :param batch_mode: call ``process`` once per batch.
    :param message_retry_delay: the message retry delay.
    :param max_attempts: with a poison route, ``process`` sees a message at most this many times
        (default: every delivery the consumer allows).
    :param max_consecutive_failures: stop pulling after this many failures in a row (``None``: never).
    :param wait_for_in_flight: seconds to keep polling after an empty pull while the backlog still
        counts messages leased elsewhere or delayed; ``None``: keep polling until a quota is reached.
    :param poll_interval: seconds between such polls.
    """

    batch_size: int = 100
    max_messages: int | None = None
    max_batches: int | None = None
    visibility_timeout: float = 300.0
    concurrency: int = 1
    batch_mode: bool = False
    message_retry_delay: MessageRetryDelay = DEFAULT_BACKOFF
    max_attempts: int | None = None
    max_consecutive_failures: int | None = DEFAULT_MAX_CONSECUTIVE_FAILURES
    wait_for_in_flight: float | None = 0.0
    poll_interval: float = 1.0

    @property
    def safety_margin(self) -> float:
        """Seconds kept free at the end of a lease for the ack request."""
        return min(30.0, max(0.5, 0.1 * self.visibility_timeout))

    @property
    def first_batch_size(self) -> int:
        """Each worker's first pull: no larger than one run of failures, so that a broken ``process``
        costs few messages an attempt; later pulls double while batches succeed."""
        return min(self.batch_size, self.max_consecutive_failures or self.batch_size)
