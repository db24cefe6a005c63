"""The drain loop against the emulator, with an injected clock for the lease-window logic."""

from __future__ import annotations

import logging
import threading
from collections import Counter

import pytest

from airflow_provider_cfqueues.api.errors import CloudflareQueuesServerError
from airflow_provider_cfqueues.api.models import PulledMessage
from airflow_provider_cfqueues.api.retry import RetryPolicy
from airflow_provider_cfqueues.consume.attempts import FixedDelay
from airflow_provider_cfqueues.consume.drain import Drainer
from airflow_provider_cfqueues.consume.drain_plan import DrainPlan
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, FaultPlan, FaultRule, ManualClock
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

from ..helpers import FAST_RETRY

log = logging.getLogger("test-drain")


@pytest.fixture
def make_hook(connection: str):  # type: ignore[no-untyped-def]
    return lambda: CloudflareQueuesHook(connection, queue="q", retry_policy=FAST_RETRY)


def test_lease_window_releases_what_cannot_be_finished(emulator: CloudflareQueuesEmulator, make_hook) -> None:  # type: ignore[no-untyped-def]
    emulator.create_queue("q")
    make_hook().push_messages(list(range(8)))
    clock = ManualClock(start=0)
    processed: list[int] = []

    def slow(message: PulledMessage) -> None:
        processed.append(message.body)
        clock.advance(3.0)  # each message takes 3 s of the 10 s lease

    plan = DrainPlan(batch_size=5, max_batches=1, visibility_timeout=10)
    summary = Drainer(make_hook, "q", plan, slow, log=log, clock=clock.now).run()
    # 3 messages fit (3 + 3 + 3 = 9 s, then < 3 s + 1 s margin remain): 2 released for immediate redelivery
    assert (summary.acked, summary.released, summary.retried, summary.failed) == (3, 2, 0, 0)
    states = Counter((m.state, m.attempts) for m in emulator.messages("q"))
    assert states == Counter({("available", 1): 2, ("available", 0): 3})


def test_batches_shrink_to_fit_the_lease_window(
    emulator: CloudflareQueuesEmulator,
    make_hook,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator.create_queue("q")
    make_hook().push_messages(list(range(12)))
    clock = ManualClock(start=0)
    pulled_sizes: list[int] = []

    def slow(message: PulledMessage) -> None:
        clock.advance(2.0)

    class Recording(Drainer):
        def _handle_batch(self, hook, messages, deadline, seconds_per_item):  # type: ignore[no-untyped-def]
            pulled_sizes.append(len(messages))
            return super()._handle_batch(hook, messages, deadline, seconds_per_item)

    plan = DrainPlan(batch_size=10, visibility_timeout=10)
    with caplog.at_level(logging.WARNING, logger="test-drain"):
        summary = Recording(make_hook, "q", plan, slow, log=log, clock=clock.now).run()
    assert summary.acked == 12 and summary.stop_reason == "the queue is empty"
    assert pulled_sizes[0] == 10 and max(pulled_sizes[1:]) <= 4  # (10 s - 1 s margin) // 2 s
    assert "only 4 fit in the 10 s visibility timeout" in caplog.text
    assert "Released 6 message(s) unprocessed (their leases expire in 2.0 s)" in caplog.text
    assert "each release spends one of the message's 4 delivery attempts" in caplog.text


def test_concurrent_workers_process_each_message_once(emulator: CloudflareQueuesEmulator, make_hook) -> None:  # type: ignore[no-untyped-def]
    emulator.create_queue("q")
    make_hook().push_messages(list(range(1_000)))
    seen: list[int] = []
    lock = threading.Lock()

    def record(message: PulledMessage) -> None:
        with lock:
            seen.append(message.body)

    summary = Drainer(make_hook, "q", DrainPlan(batch_size=25, concurrency=4), record, log=log).run()
    assert sorted(seen) == list(range(1_000))
    assert (summary.pulled, summary.acked) == (1_000, 1_000)
    # each worker starts with 10 (max_consecutive_failures) and doubles up to 25: 4 x (10 + 20), then 25s
    assert 44 <= summary.batches <= 48
    assert emulator.metrics("q")["backlog_count"] == 0


def test_max_messages_is_shared_by_the_workers(emulator: CloudflareQueuesEmulator, make_hook) -> None:  # type: ignore[no-untyped-def]
    emulator.create_queue("q")
    make_hook().push_messages(list(range(100)))
    summary = Drainer(
        make_hook, "q", DrainPlan(batch_size=7, concurrency=3, max_messages=30), lambda m: None, log=log
    ).run()
    assert summary.acked == 30 and summary.stop_reason == "max_messages or max_batches reached"
    assert emulator.metrics("q")["backlog_count"] == 70


def test_batch_mode_retries_what_process_reports(emulator: CloudflareQueuesEmulator, make_hook) -> None:  # type: ignore[no-untyped-def]
    emulator.create_queue("q")
    make_hook().push_messages(list(range(10)))

    def odd_ones_fail(messages: list[PulledMessage]) -> list[PulledMessage]:
        return [m for m in messages if m.body % 2]

    plan = DrainPlan(batch_size=10, max_batches=1, batch_mode=True, message_retry_delay=FixedDelay(60))
    summary = Drainer(make_hook, "q", plan, odd_ones_fail, log=log).run()
    assert (summary.acked, summary.retried, summary.failed) == (5, 5, 5)
    assert sorted(m.state for m in emulator.messages("q")) == ["delayed"] * 5


def test_a_failing_pull_stops_every_worker_and_raises(emulator: CloudflareQueuesEmulator, connection: str) -> None:
    emulator.create_queue("q")
    CloudflareQueuesHook(connection, queue="q").push_messages(list(range(50)))
    emulator.app.faults = FaultPlan(rules={"pull": FaultRule(error=1.0)})

    def make_hook() -> CloudflareQueuesHook:
        return CloudflareQueuesHook(connection, queue="q", retry_policy=RetryPolicy(max_attempts=2, initial_backoff=0))

    with pytest.raises(CloudflareQueuesServerError):
        Drainer(make_hook, "q", DrainPlan(concurrency=3), lambda m: None, log=log).run()
    assert emulator.metrics("q")["backlog_count"] == 50  # nothing acked, nothing lost


def test_nothing_is_acked_before_process_returns(emulator: CloudflareQueuesEmulator, make_hook) -> None:  # type: ignore[no-untyped-def]
    emulator.create_queue("q")
    make_hook().push_messages(list(range(5)))
    observed: list[int] = []

    def check(message: PulledMessage) -> None:
        # while process() runs, this message and the rest of its batch are still leased, not acked
        observed.append(emulator.metrics("q")["backlog_count"])

    Drainer(make_hook, "q", DrainPlan(batch_size=5), check, log=log).run()
    assert observed == [5, 5, 5, 5, 5]


def test_waits_for_leases_in_flight_to_come_back(emulator: CloudflareQueuesEmulator, make_hook) -> None:  # type: ignore[no-untyped-def]
    emulator.create_queue("q")
    other = make_hook()
    other.push_messages(list(range(5)))
    orphaned = other.pull_messages(batch_size=2, visibility_timeout=1).messages  # e.g. a lost pull answer
    expire = threading.Timer(0.3, emulator.clock.advance, args=(1.0,))  # type: ignore[attr-defined]
    expire.start()
    plan = DrainPlan(batch_size=10, wait_for_in_flight=10, poll_interval=0.05)
    summary = Drainer(make_hook, "q", plan, lambda m: None, log=log).run()
    expire.join()
    assert summary.acked == 5 and summary.stop_reason == "the queue is empty"
    assert len(orphaned) == 2


def test_gives_up_waiting_for_leases_in_flight(emulator: CloudflareQueuesEmulator, make_hook) -> None:  # type: ignore[no-untyped-def]
    emulator.create_queue("q")
    other = make_hook()
    other.push_messages(list(range(3)))
    other.pull_messages(batch_size=2, visibility_timeout=60)
    plan = DrainPlan(wait_for_in_flight=0.2, poll_interval=0.05)
    summary = Drainer(make_hook, "q", plan, lambda m: None, log=log).run()
    assert summary.acked == 1
    assert (
        summary.stop_reason
        == "nothing to pull; 2 message(s) still leased elsewhere or delayed (wait_for_in_flight=0.2 s)"
    )
