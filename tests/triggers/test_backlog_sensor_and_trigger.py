"""The backlog sensor in its three modes (dag.test()) and its trigger on its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_cfqueues._compat import import_string
from airflow_provider_cfqueues.api.backlog import BacklogCriteria
from airflow_provider_cfqueues.api.errors import CloudflareQueuesValidationError
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook
from airflow_provider_cfqueues.triggers.queues import (
    CloudflareQueuesBacklogTrigger,
    CloudflareQueuesMessageTrigger,
    CloudflareQueuesPurgeTrigger,
)

from ..helpers import TEST_TOKEN, task_states, trigger_events, xcom
from ..scripted_faults import ScriptedFaults

MODES = ("poke", "reschedule", "deferrable")


@pytest.fixture
def emulator(emulator_connection: Callable[[CloudflareQueuesEmulator], None]) -> Iterator[CloudflareQueuesEmulator]:
    with CloudflareQueuesEmulator(token=TEST_TOKEN) as emu:
        emulator_connection(emu)
        emu.create_queue("watched")
        yield emu


def run_sensor(mode: str, **conf: object) -> tuple[str, object]:
    from tests.dags.cfqueues_test_dags import sensor_dags

    run = sensor_dags[mode].test(run_conf={"queue": "watched", **conf})
    return task_states(run)["wait"], xcom(run, "wait")


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_met_in_every_mode(emulator: CloudflareQueuesEmulator, mode: str) -> None:
    CloudflareQueuesHook(queue="watched").push_messages(list(range(5)))
    state, metrics = run_sensor(mode, min=5, max=10)
    assert state == "success"
    assert metrics["backlog_count"] == 5  # type: ignore[index]
    assert [m.state for m in emulator.messages("watched")] == ["available"] * 5  # metrics lease nothing


@pytest.mark.slow
def test_deferred_sensor_resumes_when_the_backlog_builds_up(emulator: CloudflareQueuesEmulator) -> None:
    hook = CloudflareQueuesHook(queue="watched")
    hook.push_messages(list(range(3)))
    later = threading.Timer(1.0, hook.push_messages, args=(list(range(3)),))

    def push_later_once_polled(method: str, target: str, *_: object) -> None:
        if target.endswith("/metrics") and not later.is_alive() and not later.finished.is_set():
            later.start()  # the sensor is polling: push the rest a second later, while it waits

    emulator.app.observers.append(push_later_once_polled)
    state, metrics = run_sensor("deferrable", min=6)
    later.join()
    assert state == "success"
    assert metrics["backlog_count"] == 6  # type: ignore[index]
    assert emulator.app.requests["metrics"] > 2  # the first poke, then the trigger's polls


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_timeout_with_soft_fail_skips(emulator: CloudflareQueuesEmulator, mode: str) -> None:
    assert run_sensor(mode, min=1)[0] == "skipped"


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_transient_errors_are_polled_again_and_auth_errors_fail_at_once(
    emulator: CloudflareQueuesEmulator, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    CloudflareQueuesHook(queue="watched").push_messages([1])
    conn = emulator.airflow_connection()
    conn["extra"]["max_attempts"] = 1  # no retries inside the hook: the sensor sees every fault
    monkeypatch.setenv("AIRFLOW_CONN_CFQ_FLAKY", json.dumps(conn))
    emulator.app.faults = ScriptedFaults({"metrics": ["error", "throttle", "html"]})
    assert run_sensor(mode, min=1, conn_id="cfq_flaky")[0] == "success"
    assert sum(emulator.app.faults.injected.values()) == 3

    monkeypatch.setenv("AIRFLOW_CONN_CFQ_WRONG", json.dumps({**conn, "password": "wrong-token"}))
    started = emulator.app.requests["metrics"]
    assert run_sensor(mode, min=1, conn_id="cfq_wrong")[0] == "failed"  # soft_fail is for timeouts only
    assert emulator.app.requests["metrics"] == started  # refused before counting: one attempt, no polling


def test_trigger_serializes_to_primitives_and_round_trips() -> None:
    criteria = BacklogCriteria.build(min_backlog=10, max_oldest_age=60).to_dict()
    trigger = CloudflareQueuesBacklogTrigger(
        cloudflare_queue="orders",
        criteria=criteria,
        poll_interval=5,
        account_id="a" * 32,
        cloudflare_queues_conn_id="cfq",
    )
    classpath, kwargs = trigger.serialize()
    assert kwargs["timeout_at"] is None
    assert json.loads(json.dumps(kwargs)) == kwargs
    rebuilt = import_string(classpath)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert classpath == "airflow_provider_cfqueues.triggers.queues.CloudflareQueuesBacklogTrigger"


async def _first_event(trigger: CloudflareQueuesBacklogTrigger) -> dict[str, object]:
    async for event in trigger.run():
        return event.payload  # type: ignore[no-any-return]
    raise AssertionError("no event")


def test_trigger_events(emulator: CloudflareQueuesEmulator) -> None:
    hook = CloudflareQueuesHook(queue="watched")
    hook.push_messages(list(range(4)))

    def trigger(queue: str, **criteria: int) -> CloudflareQueuesBacklogTrigger:
        return CloudflareQueuesBacklogTrigger(
            cloudflare_queue=queue, criteria=BacklogCriteria.build(**criteria).to_dict(), poll_interval=0.05
        )

    met = asyncio.run(_first_event(trigger("watched", min_backlog=4)))
    assert met["status"] == "success" and met["metrics"]["backlog_count"] == 4  # type: ignore[index]

    emulator.app.faults = ScriptedFaults({"metrics": ["error"] * 6})  # beyond the hook's 5 attempts
    recovered = asyncio.run(_first_event(trigger("watched", max_backlog=10)))
    assert recovered["status"] == "success"

    missing = asyncio.run(_first_event(trigger("0" * 32, min_backlog=1)))
    assert missing["status"] == "error" and "10104" in str(missing["message"])
    assert missing["error_type"] == "CloudflareQueuesNotFoundError"


def test_criteria_validation() -> None:
    from airflow_provider_cfqueues.api.errors import CloudflareQueuesValidationError

    with pytest.raises(CloudflareQueuesValidationError, match="at least one threshold"):
        BacklogCriteria.build()
    with pytest.raises(CloudflareQueuesValidationError, match="never met"):
        BacklogCriteria.build(min_backlog=10, max_backlog=5)
    with pytest.raises(CloudflareQueuesValidationError, match="whole number"):
        BacklogCriteria.build(min_backlog="many")
    assert BacklogCriteria.build(min_backlog="12").min_backlog == 12
    with pytest.raises(CloudflareQueuesValidationError, match="match must be one of all, any"):
        BacklogCriteria.build(min_backlog=1, match="or")
    # with "any", a minimum above a maximum is two ways to be met, not a contradiction
    assert BacklogCriteria.build(min_backlog=10, max_backlog=0, match="any").match == "any"
    assert BacklogCriteria(min_backlog=1).to_dict()["match"] == "all"  # triggers serialized before "match"


@pytest.mark.airflow3
def test_triggers_on_a_paused_queue(emulator: CloudflareQueuesEmulator, capsys: pytest.CaptureFixture[str]) -> None:
    """The backlog trigger still sees the metrics; the message trigger keeps polling, slower, and fires
    once delivery is resumed."""

    hook = CloudflareQueuesHook(queue="watched")
    hook.push_messages(list(range(3)))
    emulator.pause_delivery("watched")
    backlog = CloudflareQueuesBacklogTrigger(
        cloudflare_queue="watched", criteria=BacklogCriteria.build(min_backlog=3).to_dict(), poll_interval=0.05
    )
    assert asyncio.run(_first_event(backlog))["status"] == "success"

    trigger = CloudflareQueuesMessageTrigger(  # ack="dag": one event with the whole batch
        cloudflare_queue="watched", ack="dag", poll_interval=0.01, paused_poll_interval=0.05
    )
    resume = threading.Timer(0.5, emulator.resume_delivery, args=("watched",))

    async def first_event() -> dict[str, object]:
        resume.start()
        async for event in trigger.run():
            return event.payload  # type: ignore[no-any-return]
        raise AssertionError("no event")

    capsys.readouterr()
    event = asyncio.run(first_event())
    resume.join()
    logged = capsys.readouterr().out  # the trigger's log
    assert [m["body"] for m in event["messages"]] == [0, 1, 2]  # type: ignore[index]
    assert 5 <= emulator.app.requests["pull"] <= 15  # every 0.05 s while paused, not every 0.01 s
    assert logged.count("is paused: pulling again every 0.05 s") == 1  # one warning per pause
    assert "was resumed" in logged


def test_backlog_triggers_of_one_queue_share_one_poll_per_interval(emulator: CloudflareQueuesEmulator) -> None:
    emulator.create_queue("other")
    timeout_at = time.time() + 1.0

    def trigger(queue: str, threshold: int) -> CloudflareQueuesBacklogTrigger:
        return CloudflareQueuesBacklogTrigger(
            cloudflare_queue=queue,
            criteria=BacklogCriteria.build(min_backlog=threshold).to_dict(),  # each its own criteria
            poll_interval=0.2,
            timeout_at=timeout_at,
        )

    triggers = [trigger("watched", 1_000 + n) for n in range(100)] + [trigger("other", 5) for _ in range(50)]

    async def all_events() -> list[dict[str, object]]:
        return list(await asyncio.gather(*(_first_event(t) for t in triggers)))

    events = asyncio.run(all_events())
    assert {e["status"] for e in events} == {"timeout"}
    # 150 triggers polling every 0.2 s for 1 s: about 5 polls per queue, not 750 in all
    assert emulator.app.requests["metrics"] <= 2 * 7
    assert emulator.app.requests["list_queues"] <= 2 * 3  # each queue name looked up once or so


@pytest.mark.airflow3
def test_the_message_trigger_backs_off_while_the_queue_is_empty(emulator: CloudflareQueuesEmulator) -> None:

    trigger = CloudflareQueuesMessageTrigger(cloudflare_queue="watched", poll_interval=0.02, max_poll_interval=0.16)
    push_later = threading.Timer(1.0, CloudflareQueuesHook(queue="watched").push_messages, args=(["late"],))

    async def first_event() -> tuple[dict[str, object], float]:
        push_later.start()
        async with contextlib.aclosing(trigger.run()) as events:  # closed in the loop, as docs/testing.md does
            async for event in events:
                return event.payload, time.monotonic()  # type: ignore[return-value]
        raise AssertionError("no event")

    started = time.monotonic()
    event, at = asyncio.run(first_event())
    push_later.join()
    assert [m["body"] for m in event["messages"]] == ["late"]  # type: ignore[index]
    # 0.02 + 0.04 + 0.08 + 0.16 + 0.16 ... : about 9 pulls in the first second, not 50
    assert emulator.app.requests["pull"] <= 12
    assert at - started < 1.0 + 0.16 + 0.5  # found within one longest interval of its arrival


@pytest.mark.parametrize(
    ("trigger_class", "required"),
    [
        (CloudflareQueuesBacklogTrigger, {"criteria": {"min_backlog": 1}}),
        (CloudflareQueuesPurgeTrigger, {}),
        pytest.param(CloudflareQueuesMessageTrigger, {}, marks=pytest.mark.airflow3),
    ],
)
def test_triggers_take_cloudflare_queue_and_refuse_unknown_arguments(
    trigger_class: type, required: dict[str, Any]
) -> None:
    classpath, kwargs = trigger_class(cloudflare_queue="inbox", **required).serialize()
    assert kwargs["cloudflare_queue"] == "inbox" and "queue" not in kwargs
    assert trigger_class(**kwargs).serialize() == (classpath, kwargs)  # what the triggerer rebuilds
    for spelling in ("queue", "queue_name"):
        with pytest.raises(
            TypeError,
            match=rf"unexpected argument\(s\) '{spelling}' \(did you mean 'cloudflare_queue'\?\); it takes "
            "cloudflare_queue, ",
        ):
            trigger_class(**{spelling: "inbox"}, **required)
    with pytest.raises(TypeError, match="'acount_id' \\(did you mean 'account_id'\\?\\)"):
        trigger_class(cloudflare_queue="inbox", acount_id="x", **required)
    with pytest.raises(TypeError, match=r"(?s)wait_time_seconds= \(Amazon SQS's name\).*takes cloudflare_queue, "):
        trigger_class(cloudflare_queue="inbox", wait_time_seconds=20, **required)


@pytest.mark.airflow3
def test_message_trigger_reads_durations_in_seconds_or_timedeltas() -> None:
    trigger = CloudflareQueuesMessageTrigger(
        cloudflare_queue="inbox",
        visibility_timeout=timedelta(minutes=10),
        poll_interval="2",
        max_poll_interval=timedelta(0, 90),
    )
    kwargs = trigger.serialize()[1]
    assert (kwargs["visibility_timeout"], kwargs["poll_interval"], kwargs["max_poll_interval"]) == (600, 2, 90)
    with pytest.raises(CloudflareQueuesValidationError, match=r"visibility_timeout must be .* to 43200 \(12 hours\)"):
        CloudflareQueuesMessageTrigger(cloudflare_queue="inbox", visibility_timeout=600_000)  # milliseconds by mistake
    with pytest.raises(CloudflareQueuesValidationError, match="poll_interval"):
        CloudflareQueuesMessageTrigger(cloudflare_queue="inbox", poll_interval=0)


def test_age_criteria_follow_the_emulators_clock(
    emulator_connection: Callable[[CloudflareQueuesEmulator], None],
) -> None:
    """Ages are measured by the server's clock (its Date header): a manual clock ages messages for the
    sensor and the trigger as it does for the emulator."""
    from airflow_provider_cfqueues.emulator import ManualClock
    from airflow_provider_cfqueues.sensors.queues import CloudflareQueuesBacklogSensor

    with CloudflareQueuesEmulator(token=TEST_TOKEN, clock=ManualClock(start=1_800_000_000.0)) as emulator:
        emulator_connection(emulator)
        emulator.create_queue("aged")
        CloudflareQueuesHook(queue="aged").push_messages(["old"])
        sensor = CloudflareQueuesBacklogSensor(
            task_id="old", cloudflare_queue="aged", min_oldest_age=timedelta(hours=1)
        )
        assert not sensor.poke({}).is_done  # type: ignore[arg-type]
        emulator.clock.advance(3601)
        assert sensor.poke({}).is_done  # type: ignore[arg-type]
        criteria = BacklogCriteria.build(min_oldest_age=3600).to_dict()
        (event,) = asyncio.run(
            trigger_events(CloudflareQueuesBacklogTrigger(cloudflare_queue="aged", criteria=criteria), 1)
        )
        assert event["status"] == "success" and "oldest age=3601" in event["message"]


def test_any_threshold_ends_the_wait_of_the_sensor_and_of_its_trigger(
    emulator_connection: Callable[[CloudflareQueuesEmulator], None],
) -> None:
    """ "At least 500 messages OR the oldest older than 10 minutes": one sensor, poking or deferred, on the
    emulator's clock; the same thresholds with match="all" still wait."""
    from airflow_provider_cfqueues.emulator import ManualClock
    from airflow_provider_cfqueues.sensors.queues import CloudflareQueuesBacklogSensor

    try:
        from airflow.sdk.exceptions import TaskDeferred
    except ImportError:  # Airflow 2.11
        from airflow.exceptions import TaskDeferred

    thresholds: dict[str, Any] = {"min_backlog": 500, "min_oldest_age": timedelta(minutes=10)}
    with CloudflareQueuesEmulator(token=TEST_TOKEN, clock=ManualClock(start=1_800_000_000.0)) as emulator:
        emulator_connection(emulator)
        emulator.create_queue("either")
        CloudflareQueuesHook(queue="either").push_messages([1, 2, 3])
        either = CloudflareQueuesBacklogSensor(
            task_id="either", cloudflare_queue="either", match="any", deferrable=True, poke_interval=0.05, **thresholds
        )
        both = CloudflareQueuesBacklogSensor(task_id="both", cloudflare_queue="either", **thresholds)
        with pytest.raises(TaskDeferred) as deferred:  # neither holds yet: it defers
            either.execute(context={})  # type: ignore[arg-type]
        trigger = deferred.value.trigger
        assert trigger.serialize()[1]["criteria"]["match"] == "any"
        emulator.clock.advance(601)
        assert not both.poke({}).is_done  # type: ignore[arg-type]
        assert either.poke({}).is_done  # type: ignore[arg-type]
        (event,) = asyncio.run(trigger_events(trigger, 1))
        assert event["status"] == "success" and "met: oldest message age >= 600 s" in event["message"]
        assert "backlog_count >= 500" not in event["message"].split("(")[0]


def test_the_deferral_recipe_of_the_testing_docs(emulator_connection: Any) -> None:
    """docs/testing.md: catch the sensor's deferral and run its trigger against the emulator."""
    from airflow_provider_cfqueues.sensors.queues import CloudflareQueuesBacklogSensor

    try:
        from airflow.sdk.exceptions import TaskDeferred
    except ImportError:  # Airflow 2.11
        from airflow.exceptions import TaskDeferred

    with CloudflareQueuesEmulator(token=TEST_TOKEN) as emulator:
        emulator_connection(emulator)
        emulator.create_queue("orders")
        sensor = CloudflareQueuesBacklogSensor(
            task_id="wait", cloudflare_queue="orders", min_backlog=2, deferrable=True, poke_interval=0.05, timeout=10
        )
        with pytest.raises(TaskDeferred) as deferred:
            sensor.execute(context={})  # type: ignore[arg-type]
        trigger = deferred.value.trigger
        assert isinstance(trigger, CloudflareQueuesBacklogTrigger) and trigger.cloudflare_queue == "orders"
        CloudflareQueuesHook().push_messages([1, 2], queue="orders")
        (event,) = asyncio.run(trigger_events(trigger, 1))
        assert event["status"] == "success" and event["metrics"]["backlog_count"] == 2
