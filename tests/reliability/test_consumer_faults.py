"""
Consumer faults: the user's own code fails, not the network. Against the emulator configured like a
Cloudflare consumer with its defaults (``max_retries`` 3, consumer ``retry_delay`` 0, no dead-letter
queue), nothing may be lost that the user could still recover, attempts are spent at most once per
run, and every summary, event and error says what happened to the messages.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cfqueues._compat import AIRFLOW_3
from airflow_provider_cfqueues.api.errors import CloudflareQueuesConfigError, CloudflareQueuesValidationError
from airflow_provider_cfqueues.api.models import PulledMessage
from airflow_provider_cfqueues.consume.drain import Drainer
from airflow_provider_cfqueues.consume.drain_plan import DrainPlan, DrainSummary
from airflow_provider_cfqueues.consume.fate import BatchResultError
from airflow_provider_cfqueues.consume.poison import PoisonEnvelope, Router
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, FaultPlan, FaultRule
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

from ..helpers import FAST_RETRY, TEST_TOKEN, point_connection, task_states, trigger_events
from ..scripted_faults import ScriptedFaults

log = logging.getLogger("test-consumer-faults")


def drain(
    queue: str,
    process: Callable[..., Any],
    *,
    on_poison: Router | None = None,
    clock: Callable[[], float] = time.monotonic,
    **plan: Any,
) -> DrainSummary:
    """One run of PullAndAck's engine, each worker with its own hook (the connection points at the emulator)."""
    return Drainer(
        lambda: CloudflareQueuesHook(queue=queue, retry_policy=FAST_RETRY),
        queue,
        DrainPlan(**plan),
        process,
        on_poison=on_poison,
        log=log,
        clock=clock,
    ).run()


def journal(emulator: CloudflareQueuesEmulator, kind: str) -> list[str]:
    return [m for e in emulator.events if e.kind == kind for m in e.message_ids]


def print_table(title: str, header: tuple[str, ...], rows: list[tuple[Any, ...]], capsys: Any) -> None:
    widths = [max(len(str(v)) for v in column) for column in zip(header, *rows, strict=True)]
    lines = [title] + [
        "  " + "  ".join(f"{v!s:>{w}}" for v, w in zip(row, widths, strict=True)) for row in [header, *rows]
    ]
    with capsys.disabled():
        print("\n\n" + "\n".join(lines))


# -- a database outage -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_database_outage_deletes_nothing(
    journaled_emulator: CloudflareQueuesEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An hourly PullAndAck (defaults, concurrency 2) while its database is down for three runs, then back."""
    from tests.dags.cfqueues_consumer_fault_dags import outage_dag

    emulator = journaled_emulator
    emulator.create_queue("orders")  # Cloudflare's defaults: max_retries 3, retry_delay 0, no dead-letter queue
    CloudflareQueuesHook(queue="orders").push_messages([{"n": n} for n in range(300)])
    database = tmp_path / "db"
    database.mkdir()
    conf = {"queue": "orders", "db_path": str(database / "orders.db")}
    rows = []
    for run_number, up in enumerate([False, False, False, True], start=1):
        if not up:
            database.rename(tmp_path / "db-gone")  # the outage: the database file cannot be opened
        run = outage_dag.test(run_conf=conf)
        if not up:
            (tmp_path / "db-gone").rename(database)
        attempts = Counter(m.attempts for m in emulator.messages("orders"))
        rows.append(
            (
                run_number,
                "up" if up else "down",
                task_states(run)["load"],
                len(journal(emulator, "deliver")),
                dict(sorted(attempts.items())),
                len(journal(emulator, "drop")),
            )
        )
        assert task_states(run)["load"] == ("success" if up else "failed")
        emulator.clock.advance(3600)  # the next hourly run
    print_table(
        "Database outage over three hourly runs, 300 messages, Cloudflare's consumer defaults",
        ("run", "database", "task", "deliveries so far", "backlog by attempts", "deleted"),
        rows,
        capsys,
    )
    import sqlite3

    with sqlite3.connect(database / "orders.db") as db:
        assert db.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 300  # all processed by the first good run
    assert journal(emulator, "drop") == [] and emulator.metrics("orders")["backlog_count"] == 0
    # each outage run stopped after 10 failures in a row, its 2 workers having pulled 10 each
    for run_number, (_, _, _, _, by_attempts, _) in enumerate(rows[:3], start=1):
        assert sum(count for attempts, count in by_attempts.items() if attempts > 0) <= 20 * run_number
        assert max(by_attempts) <= run_number


def test_the_outage_error_says_what_happened(connection: str, emulator: CloudflareQueuesEmulator) -> None:
    from airflow_provider_cfqueues.operators.queues import CloudflareQueuesPullAndAckOperator

    emulator.create_queue("orders")
    CloudflareQueuesHook(queue="orders").push_messages([{"n": n} for n in range(300)])

    def database_down(message: PulledMessage) -> None:
        raise ConnectionRefusedError("could not connect to server: Connection refused")

    operator = CloudflareQueuesPullAndAckOperator(task_id="load", cloudflare_queue="orders", process=database_down)
    with pytest.raises(Exception, match="Stopped pulling after 10 consecutive process") as failure:
        operator.execute({})  # type: ignore[arg-type]
    text = str(failure.value)
    assert "ConnectionRefusedError: could not connect to server" in text
    assert "failed 10 (10 retried)" in text and "backlog now 300, of which 290 never pulled" in text
    # one attempt spent by 10 messages (come back after 30 s); 290 never pulled
    states = Counter((m.state, m.attempts) for m in emulator.messages("orders"))
    assert states == {("delayed", 1): 10, ("available", 0): 290}
    assert {m.visible_at - emulator.clock.now() for m in emulator.messages("orders") if m.attempts} == {30}


# -- random failures and poison messages ------------------------------------------------------------

# -- a poison tail is not an outage ------------------------------------------------------------------


@pytest.mark.parametrize("route", ["dead-letter queue", "on_poison queue"])
def test_a_poison_tail_drains_in_three_green_runs(
    emulator: CloudflareQueuesEmulator, connection: str, route: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    The newcomer's ETL: 2,000 orders, 5 % of them poison (process() always raises for them), a consumer
    with max_retries=2 and a dead-letter queue, fail_on_error=False, hourly runs. Poison fails again on
    later deliveries: it is not an outage, so no run trips the breaker. Every run's summary is read
    against the emulator's state.
    """
    from airflow_provider_cfqueues.operators.consume import CloudflareQueuesPullAndAckOperator

    emulator.create_queue("orders", max_retries=2, dead_letter_queue="orders-dlq")
    emulator.create_queue("orders-poison", http_pull=False)
    orders = [{"n": n, "poison": n % 20 == 7} for n in range(2_000)]
    CloudflareQueuesHook(queue="orders").push_messages(orders)
    rows: dict[int, int] = {}
    lock = threading.Lock()

    def load(message: PulledMessage) -> None:
        if message.body["poison"]:
            raise ValueError(f"order {message.body['n']}: cannot parse")
        with lock:
            rows[message.body["n"]] = rows.get(message.body["n"], 0) + 1

    operator = CloudflareQueuesPullAndAckOperator(
        task_id="load",
        cloudflare_queue="orders",
        process=load,
        fail_on_error=False,
        on_poison="orders-poison" if route == "on_poison queue" else None,
    )
    table = []
    for run in range(1, 6):
        if emulator.metrics("orders")["backlog_count"] == 0:
            break
        summary = operator.execute({})  # type: ignore[arg-type]  # raises on a failed run: none may fail
        delayed = [m for m in emulator.messages("orders") if m.state == "delayed"]
        # the summary is true against the emulator at the moment it is written
        assert summary["backlog_after"] == emulator.metrics("orders")["backlog_count"] == len(delayed)
        assert summary["retried"] == len(delayed) and summary["failed"] == summary["retried"] + summary["dead_lettered"]
        assert summary["stop_reason"] == "the queue is empty" and summary["released"] == 0
        table.append(
            (
                run,
                summary["pulled"],
                summary["acked"],
                summary["failed"],
                summary["dead_lettered"],
                summary["poisoned"],
                summary["backlog_after"],
            )
        )
        emulator.clock.advance(3600)
    runs = len(table)
    poison = [o["n"] for o in orders if o["poison"]]
    assert runs <= 3 and sorted(rows) == [o["n"] for o in orders if not o["poison"]]
    assert set(rows.values()) == {1}  # each good order processed once
    if route == "dead-letter queue":
        assert emulator.metrics("orders-dlq")["backlog_count"] == len(poison) == table[-1][4]
    else:
        assert emulator.metrics("orders-poison")["backlog_count"] == len(poison) == table[-1][5]
        assert emulator.metrics("orders-dlq")["backlog_count"] == 0
    print_table(
        f"Poison tail, {route}: 2,000 orders, 100 poison, max_retries=2, fail_on_error=False (every run green)",
        ("run", "pulled", "acked", "failed", "dead-lettered", "routed as poison", "backlog after"),
        table,
        capsys,
    )


def test_the_budget_log_lists_only_the_retries_the_consumer_allows(
    emulator: CloudflareQueuesEmulator, connection: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_provider_cfqueues.operators.consume import CloudflareQueuesPullAndAckOperator

    emulator.create_queue("orders", max_retries=2)
    CloudflareQueuesPullAndAckOperator(task_id="load", cloudflare_queue="orders", process=print).execute({})  # type: ignore[arg-type]
    logged = capsys.readouterr().out
    assert "failed messages come back after 30 s, 60 s" in logged and "120 s" not in logged


def test_one_workers_batch_in_hand_is_not_reported_as_leased_elsewhere(
    emulator: CloudflareQueuesEmulator, connection: str
) -> None:
    """Two workers: one holds a slow batch while the other finds the queue empty. Nothing is leased
    elsewhere, so the run says the queue is empty (not "N message(s) still leased")."""
    emulator.create_queue("orders")
    CloudflareQueuesHook(queue="orders").push_messages(list(range(15)))
    second_pull_done = threading.Event()

    def slow_first(message: PulledMessage) -> None:
        if message.body < 10:  # the first worker's batch of 10 waits for the other's empty pull
            second_pull_done.wait(5)

    class Watching(Drainer):
        def _stop_on_empty(self, backlog: int | None, empty_for: float) -> bool:
            second_pull_done.set()
            return super()._stop_on_empty(backlog, empty_for)

    summary = Watching(
        lambda: CloudflareQueuesHook(queue="orders", retry_policy=FAST_RETRY),
        "orders",
        DrainPlan(concurrency=2, wait_for_in_flight=0),
        slow_first,
        log=log,
    ).run()
    assert summary.acked == 15 and summary.stop_reason == "the queue is empty", summary.stop_reason


def test_random_failures_cost_one_attempt_per_run(
    emulator: CloudflareQueuesEmulator, connection: str, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator.create_queue("q")
    emulator.state.record_events = True
    CloudflareQueuesHook(queue="q").push_messages([{"n": n} for n in range(300)])
    flaky = random.Random(2026)
    seen: list[tuple[int, str]] = []  # (run, message id)
    failures: Counter[str] = Counter()
    run = 0

    def process(message: PulledMessage) -> None:
        seen.append((run, message.id))
        if flaky.random() < 0.3:
            failures[message.id] += 1
            raise RuntimeError("flaky")

    rows = []
    deleted = 0
    while emulator.metrics("q")["backlog_count"]:
        run += 1
        summary = drain("q", process)
        deleted += summary.deleted
        rows.append((run, summary.pulled, summary.acked, summary.failed, summary.deleted, summary.backlog_after))
        emulator.clock.advance(3600)
        assert run < 10
    print_table(
        "30 % random process() failures, 300 messages",
        ("run", "pulled", "acked", "failed", "deleted", "backlog"),
        rows,
        capsys,
    )
    assert max(Counter(seen).values()) == 1  # process() saw each message at most once per run
    dropped = journal(emulator, "drop")
    assert deleted == len(dropped) and all(failures[m] == 4 for m in dropped)  # only after 4 failed deliveries
    assert len(journal(emulator, "ack")) == 300 - len(dropped)


@pytest.mark.parametrize("route", ["none", "dead-letter queue", "poison queue"])
def test_an_always_failing_message(
    emulator: CloudflareQueuesEmulator, connection: str, route: str, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.create_queue("q", dead_letter_queue="q-dlq" if route == "dead-letter queue" else None)
    emulator.create_queue("q-poison", http_pull=False)
    hook = CloudflareQueuesHook(queue="q")
    hook.push_messages([{"n": n, "poison": n == 3} for n in range(10)])

    def process(message: PulledMessage) -> None:
        if message.body["poison"]:
            raise ValueError("cannot parse order 3")

    on_poison = None
    if route == "poison queue":
        from airflow_provider_cfqueues.consume.poison import QueueRoute

        on_poison = QueueRoute(hook, "q-poison", source="q", routed_by={"test": "always failing"})
    summaries = []
    with caplog.at_level(logging.WARNING, logger=log.name):
        for _ in range(4):  # the consumer allows 4 deliveries
            summaries.append(drain("q", process, on_poison=on_poison))
            emulator.clock.advance(3600)
    # once per run; routed as poison on the last delivery, the message is handled, not failed
    assert [s.failed for s in summaries] == [1, 1, 1, 0 if route == "poison queue" else 1]
    last = summaries[-1]
    assert emulator.metrics("q")["backlog_count"] == 0
    if route == "none":
        assert (last.deleted, last.retried) == (1, 0)
        assert "1 message(s) on their last delivery" in caplog.text  # said before process() ran
        assert "that was its last delivery: the service deletes it" in caplog.text
    elif route == "dead-letter queue":
        assert (last.dead_lettered, last.deleted) == (1, 0) and emulator.metrics("q-dlq")["backlog_count"] == 1
        assert "moves it to the dead-letter queue 'q-dlq'" in caplog.text
    else:  # max_attempts defaults to the consumer's 4 deliveries: routed when the 4th fails
        assert (last.poisoned, last.acked, last.deleted) == (1, 1, 0)
        assert emulator.metrics("q-poison")["backlog_count"] == 1
        (copy,) = emulator.messages("q-poison")
        envelope = PoisonEnvelope.read(json.loads(base64.b64decode(copy.body)))  # where it came from, and why
        assert envelope.source["attempts"] == 4 and envelope.original().body == {"n": 3, "poison": True}
        assert "failed on delivery 4 (max_attempts=4): ValueError: cannot parse order 3" in envelope.reason


def test_a_missing_or_circular_poison_queue_fails_before_the_first_pull(
    emulator: CloudflareQueuesEmulator, connection: str
) -> None:
    from airflow_provider_cfqueues.operators.queues import CloudflareQueuesPullAndAckOperator

    emulator.create_queue("q")
    CloudflareQueuesHook(queue="q").push_messages([1, 2, 3])
    missing = CloudflareQueuesPullAndAckOperator(task_id="t", cloudflare_queue="q", process=print, on_poison="q-poison")
    with pytest.raises(
        CloudflareQueuesConfigError, match="on_poison names queue 'q-poison', which does not exist; nothing was pulled"
    ):
        missing.execute({})  # type: ignore[arg-type]
    circular = CloudflareQueuesPullAndAckOperator(task_id="t", cloudflare_queue="q", process=print, on_poison="q")
    with pytest.raises(CloudflareQueuesValidationError, match="the queue being drained"):
        circular.execute({})  # type: ignore[arg-type]
    assert {m.attempts for m in emulator.messages("q")} == {0}


def test_giving_back_never_ends_a_message_on_its_last_delivery(
    emulator: CloudflareQueuesEmulator, connection: str, caplog: pytest.LogCaptureFixture
) -> None:
    """max_retries=0: every delivery is the last; a release would delete the message unprocessed."""
    emulator.create_queue("q", max_retries=0)
    CloudflareQueuesHook(queue="q").push_messages(list(range(12)))
    now = [0.0]
    processed = []

    def slow(message: PulledMessage) -> None:
        processed.append(message.body)
        now[0] += 3.0  # 3 s per message in a 10 s lease: releases would start after 3 messages

    with caplog.at_level(logging.WARNING, logger=log.name):
        summary = drain(
            "q", slow, clock=lambda: now[0], batch_size=12, visibility_timeout=10, max_consecutive_failures=None
        )
    assert sorted(processed) == list(range(12)) and (summary.acked, summary.released) == (12, 0)
    assert "on its last delivery although their leases expire" in caplog.text


# -- batch mode ------------------------------------------------------------------------------------

FORMS: dict[str, Callable[[list[PulledMessage]], Any]] = {
    "None": lambda batch: None,
    "empty list": lambda batch: [],
    "failed messages": lambda batch: [batch[1], batch[3]],
    "their ids": lambda batch: {batch[1].id, batch[3].id},
    "their lease ids": lambda batch: (m.lease_id for m in (batch[1], batch[3])),
    "ids and messages mixed": lambda batch: [batch[1].id, batch[3]],
}
BROKEN: dict[str, Callable[[list[PulledMessage]], Any]] = {
    "XCom dicts": lambda batch: [batch[1].to_xcom()],
    "indices": lambda batch: [1, 3],
    "bodies": lambda batch: [batch[1].body],
    "an unknown id": lambda batch: ["0" * 32],
    "one message, not a list": lambda batch: batch[1],
    "a bare id string": lambda batch: batch[1].id,
    "True": lambda batch: True,
}


@pytest.mark.parametrize("form", FORMS)
def test_batch_mode_return_forms(emulator: CloudflareQueuesEmulator, connection: str, form: str) -> None:
    emulator.create_queue("q")
    CloudflareQueuesHook(queue="q").push_messages(list(range(5)))
    summary = drain("q", FORMS[form], batch_size=5, max_batches=1, batch_mode=True)
    failed = [] if form in ("None", "empty list") else [1, 3]
    assert (summary.acked, summary.retried, summary.failed) == (5 - len(failed), len(failed), len(failed))
    assert sorted(json.loads(base64.b64decode(m.body)) for m in emulator.messages("q")) == failed


def test_batch_mode_raising_retries_the_whole_batch(emulator: CloudflareQueuesEmulator, connection: str) -> None:
    emulator.create_queue("q")
    CloudflareQueuesHook(queue="q").push_messages(list(range(5)))

    def fails(batch: list[PulledMessage]) -> None:
        raise TimeoutError("warehouse unavailable")

    summary = drain("q", fails, batch_size=5, max_batches=1, batch_mode=True)
    assert (summary.acked, summary.retried, summary.failed) == (0, 5, 5)
    assert {(m.state, m.attempts) for m in emulator.messages("q")} == {("delayed", 1)}


@pytest.mark.parametrize("form", BROKEN)
def test_batch_mode_acks_nothing_it_cannot_match(
    emulator: CloudflareQueuesEmulator, connection: str, form: str
) -> None:
    emulator.create_queue("q")
    CloudflareQueuesHook(queue="q").push_messages(list(range(5)))
    with pytest.raises(BatchResultError) as failure:
        drain("q", BROKEN[form], batch_size=5, max_batches=1, batch_mode=True)
    assert "process() returns None" in str(failure.value) or "No message of this batch was acked" in str(failure.value)
    assert emulator.metrics("q")["backlog_count"] == 5  # nothing acked: all retried after the backoff
    assert {(m.state, m.attempts) for m in emulator.messages("q")} == {("delayed", 1)}


def test_batch_mode_warns_when_every_message_is_reported(
    emulator: CloudflareQueuesEmulator, connection: str, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.create_queue("q")
    CloudflareQueuesHook(queue="q").push_messages(list(range(3)))
    with caplog.at_level(logging.WARNING, logger=log.name):
        summary = drain("q", lambda batch: batch, batch_size=3, max_batches=1, batch_mode=True)
    assert summary.retried == 3 and "If it returned the messages it processed" in caplog.text


# -- the Ack operator ------------------------------------------------------------------------------


def test_the_ack_operator_fails_loudly_on_what_it_could_not_ack(
    emulator: CloudflareQueuesEmulator, connection: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_provider_cfqueues._compat import AirflowException
    from airflow_provider_cfqueues.operators.queues import CloudflareQueuesAckOperator

    emulator.create_queue("q")
    emulator.create_queue("other")
    hook = CloudflareQueuesHook(queue="q")
    hook.push_messages(list(range(4)))
    hook.push_messages(["elsewhere"], queue="other")
    pulled = hook.pull_messages(batch_size=4).messages
    foreign = hook.pull_messages(queue="other").messages[0]

    def ack(acks: Any) -> dict[str, Any]:
        return CloudflareQueuesAckOperator(task_id="ack", cloudflare_queue="q", acks=acks).execute({})  # type: ignore[arg-type]

    with pytest.raises(AirflowException) as by_id:  # message ids instead of lease ids
        ack([pulled[0].lease_id, pulled[1].id])
    assert f"{pulled[1].id}: unknown lease id" in str(by_id.value)
    assert "1 of the 2 lease(s) given were not acked or retried" in str(by_id.value)
    assert "ack with each pulled message's lease_id, not its id" in str(by_id.value)
    assert emulator.metrics("q")["backlog_count"] == 3  # what it could ack, it acked

    with pytest.raises(AirflowException, match="1 of the 2 lease"):  # a lease of another queue
        ack([pulled[1].lease_id, foreign.lease_id])
    assert emulator.metrics("q")["backlog_count"] == 2

    # acking again what an earlier try acked is settled (a retried Ack task must not fail on it)
    assert ack([pulled[0].lease_id, pulled[1].lease_id])["acked"] == 0

    emulator.clock.advance(31)  # pulled[2]'s lease expired: a late ack still deletes, and only warns
    capsys.readouterr()
    assert ack([pulled[2].lease_id])["acked"] == 1
    assert "lease expired before this acknowledgement" in capsys.readouterr().out  # Airflow's task log


# -- the message trigger ---------------------------------------------------------------------------


@pytest.mark.airflow3
@pytest.mark.parametrize(
    ("script", "acked"),
    [
        (["error"] * 6, False),  # the ack fails, beyond the hook's retries
        (["lost"] * 6, False),  # every answer lost: applied, but nothing confirms it
        (["lost"], True),  # one lost answer: the resent ack says "already acknowledged"
    ],
    ids=["ack fails", "ack answers lost", "one ack answer lost"],
)
def test_message_trigger_says_acked_only_when_confirmed(
    emulator: CloudflareQueuesEmulator, connection: str, script: list[str], acked: bool
) -> None:
    from airflow_provider_cfqueues.triggers.queues import CloudflareQueuesMessageTrigger

    emulator.create_queue("inbox")
    CloudflareQueuesHook(queue="inbox").push_messages(["a", "b"])
    emulator.app.faults = ScriptedFaults({"ack": list(script)})
    trigger = CloudflareQueuesMessageTrigger(cloudflare_queue="inbox", ack="emitted", poll_interval=0.05)
    (event,) = asyncio.run(trigger_events(trigger, 1))  # the trigger fired: an ack failure did not end it
    assert event["acked"] is acked
    assert [m["acked"] for m in event["messages"]] == [acked, acked]
    assert all(("lease_id" in m) is not acked for m in event["messages"])
    if not acked:
        assert event["leased_for_seconds"] == 600
    json.dumps(event)


@pytest.mark.airflow3
def test_message_trigger_keeps_running_through_transient_errors(
    emulator: CloudflareQueuesEmulator, connection: str
) -> None:
    from airflow_provider_cfqueues.triggers.queues import CloudflareQueuesMessageTrigger

    emulator.create_queue("inbox")
    CloudflareQueuesHook(queue="inbox").push_messages(["first"])
    conn = emulator.airflow_connection()
    conn["extra"]["max_attempts"] = 1  # every fault reaches the trigger
    os_env = {"AIRFLOW_CONN_CLOUDFLARE_QUEUES_DEFAULT": json.dumps(conn)}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in os_env.items():
            patch.setenv(name, value)
        emulator.app.faults = ScriptedFaults({"pull": [None, "error", "html", "throttle"]})
        trigger = CloudflareQueuesMessageTrigger(
            cloudflare_queue="inbox", ack="dag", batch_size=1, max_messages_per_event=5, poll_interval=0.01
        )

        async def two_events() -> list[dict[str, Any]]:
            events: list[dict[str, Any]] = []
            async for event in trigger.run():
                events.append(event.payload)
                CloudflareQueuesHook(queue="inbox").push_messages(["second"])
                if len(events) == 2:
                    break
            return events

        first, second = asyncio.run(two_events())
    # the error after the first pull ended the gathering, not the trigger: "first" was fired at once
    assert [m["body"] for m in first["messages"]] == ["first"]
    assert [m["body"] for m in second["messages"]] == ["second"]


# -- the backlog trigger ---------------------------------------------------------------------------


def test_backlog_trigger_times_out_with_the_last_error(emulator: CloudflareQueuesEmulator, connection: str) -> None:
    from airflow_provider_cfqueues.triggers.queues import CloudflareQueuesBacklogTrigger

    emulator.create_queue("watched")
    emulator.app.faults = FaultPlan(rules={"metrics": FaultRule(error=1.0)})
    conn = emulator.airflow_connection()
    conn["extra"]["max_attempts"] = 1
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_CLOUDFLARE_QUEUES_DEFAULT", json.dumps(conn))
        trigger = CloudflareQueuesBacklogTrigger(
            cloudflare_queue="watched", criteria={"min_backlog": 1}, poll_interval=0.05, timeout_at=time.time() + 0.3
        )
        (event,) = asyncio.run(trigger_events(trigger, 1))
    assert event["status"] == "timeout"
    assert "the last poll failed" in event["message"] and "HTTP 50" in event["message"]


# -- task timeout with concurrency -----------------------------------------------------------------


@pytest.mark.slow
def test_a_task_timeout_stops_every_worker(airflow_db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """execution_timeout=2 s, 4 workers, 0.1 s per message, 400 messages (10 s of work)."""
    from tests.dags.cfqueues_consumer_fault_dags import timeout_dag

    with CloudflareQueuesEmulator(token=TEST_TOKEN, record_events=True) as emulator:
        point_connection(monkeypatch, emulator)
        emulator.create_queue("slow")
        CloudflareQueuesHook(queue="slow").push_messages(list(range(400)))
        log_path = tmp_path / "processed.log"
        started = time.monotonic()
        if AIRFLOW_3:
            run = timeout_dag.test(run_conf={"queue": "slow", "log_path": str(log_path)})
            assert task_states(run) == {"drain": "failed"}
        else:  # Airflow 2.11's dag.test() lets the task's timeout through
            from airflow.exceptions import AirflowTaskTimeout

            with pytest.raises(AirflowTaskTimeout):
                timeout_dag.test(run_conf={"queue": "slow", "log_path": str(log_path)})
        took = time.monotonic() - started
        processed = log_path.read_text().split()
        time.sleep(0.5)
        assert log_path.read_text().split() == processed  # no worker carries on after the task ended
        acked = journal(emulator, "ack")
        assert set(acked) <= set(processed)  # nothing acked that was not processed
        states = Counter(m.state for m in emulator.messages("slow"))
        assert states["leased"] == 0  # the unprocessed rest of every batch was given back at once
        assert len(processed) <= 2 / 0.1 * 4 + 4 + 4  # 2 s of 4 workers, plus the message in hand
        assert took < 2 + 8  # the first dag.test() of a process takes a few seconds on its own


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_kill_stops_every_worker_after_the_message_in_hand(
    emulator: CloudflareQueuesEmulator, connection: str, concurrency: int
) -> None:
    """Airflow calls on_kill() on SIGTERM (Airflow 3 raises nothing: the task must stop on its own)."""
    from airflow_provider_cfqueues._compat import AirflowException
    from airflow_provider_cfqueues.operators.queues import CloudflareQueuesPullAndAckOperator

    emulator.create_queue("q")
    emulator.state.record_events = True
    CloudflareQueuesHook(queue="q").push_messages(list(range(200)))
    processed: list[str] = []
    lock = threading.Lock()

    def process(message: PulledMessage) -> None:
        with lock:
            processed.append(message.id)
            if len(processed) == 25:
                operator.on_kill()
        time.sleep(0.005)

    operator = CloudflareQueuesPullAndAckOperator(
        task_id="t", cloudflare_queue="q", process=process, concurrency=concurrency, batch_size=10
    )
    with pytest.raises(AirflowException, match=r"The drain was stopped \(the task was killed or timed out\)"):
        operator.execute({})  # type: ignore[arg-type]
    assert 25 <= len(processed) <= 25 + concurrency - 1  # the others finish the message in hand, no more
    assert set(journal(emulator, "ack")) == set(processed)  # what was processed is acked, nothing else
    assert Counter(m.state for m in emulator.messages("q")) == {"available": 200 - len(processed)}


def test_messages_name_the_real_queue_and_an_empty_push_says_so(
    emulator: CloudflareQueuesEmulator,
    connection: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from airflow_provider_cfqueues._compat import AirflowException
    from airflow_provider_cfqueues.operators.pull_ack import CloudflareQueuesPullOperator
    from airflow_provider_cfqueues.operators.push import CloudflareQueuesPushOperator

    emulator.create_queue("paused-orders")
    emulator.pause_delivery("paused-orders")
    pull = CloudflareQueuesPullOperator(task_id="pull", cloudflare_queue="paused-orders", on_paused="fail")
    with pytest.raises(AirflowException, match="`npx wrangler queues resume-delivery paused-orders`"):
        pull.execute({})  # type: ignore[arg-type]
    result = CloudflareQueuesPushOperator(task_id="push", cloudflare_queue="paused-orders", messages=[]).execute({})  # type: ignore[arg-type]
    assert (result["messages"], result["requests"]) == (0, 0)
    said = capsys.readouterr().out + caplog.text
    assert "Nothing to push to queue paused-orders: the message list is empty, no request was sent" in said
