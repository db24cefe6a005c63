"""Queue administration through the hook, over HTTP against the emulator: create, change, pause,
purge and delete queues and their HTTP pull consumer; the name cache across deletions; answers lost
half-way; a token without the Queues Edit permission."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from airflow_provider_cfqueues.api.errors import (
    CloudflareQueuesAuthError,
    CloudflareQueuesDeliveryPausedError,
    CloudflareQueuesError,
    CloudflareQueuesNotFoundError,
    CloudflareQueuesValidationError,
)
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, ManualClock
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

from ..helpers import FAST_RETRY, point_connection
from ..scripted_faults import ScriptedFaults


def _bodies(emulator: CloudflareQueuesEmulator, operation: str) -> list[dict[str, object]]:
    """The JSON bodies the hook sent for ``operation``, recorded by an observer installed by the test."""
    return [json.loads(body) for op, body in emulator.sent if op == operation]  # type: ignore[attr-defined]


@pytest.fixture
def recorded(emulator: CloudflareQueuesEmulator) -> CloudflareQueuesEmulator:
    """The emulator, keeping every request's method, path and body in ``emulator.sent``."""
    sent: list[tuple[str, bytes]] = []

    def observe(method: str, target: str, headers: object, body: bytes, reply: object) -> None:
        sent.append((f"{method} {target.split('?')[0].rsplit('/queues', 1)[-1]}", body))

    emulator.app.observers.append(observe)
    emulator.sent = sent  # type: ignore[attr-defined]
    return emulator


def test_create_a_queue_with_settings_in_seconds_and_a_pull_consumer(
    recorded: CloudflareQueuesEmulator, hook: CloudflareQueuesHook
) -> None:
    queue = hook.create_queue("orders", delivery_delay=timedelta(seconds=5), message_retention_period=3600)
    assert queue.queue_name == "orders"
    assert queue.settings.delivery_delay == 5 and queue.settings.message_retention_period == 3600
    consumer = hook.create_consumer(
        "orders", batch_size=10, max_retries=4, retry_delay=30, visibility_timeout=timedelta(minutes=2),
        dead_letter_queue="orders-dlq",
    )  # fmt: skip
    assert consumer.type == "http_pull" and consumer.dead_letter_queue == "orders-dlq"
    # seconds from the user, milliseconds only on the wire
    (create_body,) = _bodies(recorded, "POST ")
    assert create_body == {"queue_name": "orders", "settings": {"delivery_delay": 5, "message_retention_period": 3600}}
    (consumer_body,) = _bodies(recorded, f"POST /{queue.queue_id}/consumers")
    assert consumer_body == {
        "type": "http_pull",
        "dead_letter_queue": "orders-dlq",
        "settings": {"batch_size": 10, "max_retries": 4, "retry_delay": 30, "visibility_timeout_ms": 120_000},
    }
    # the consumer works: a pull without arguments uses its batch size and visibility timeout
    hook.push_messages(range(12), queue="orders")
    recorded.clock.advance(5)  # the queue's delivery delay
    pulled = hook.pull_messages(queue="orders")
    assert len(pulled.messages) == 10
    assert recorded.messages("orders")[0].visible_at == pytest.approx(recorded.clock.now() + 120)


def test_update_queue_changes_only_what_is_given(hook: CloudflareQueuesHook) -> None:
    hook.create_queue("orders", delivery_delay=5, message_retention_period=7200)
    updated = hook.update_queue("orders", message_retention_period=timedelta(hours=4))
    assert updated.settings.message_retention_period == 14_400
    assert updated.settings.delivery_delay == 5  # PATCH: left as it was
    with pytest.raises(CloudflareQueuesValidationError, match="nothing to change"):
        hook.update_queue("orders")


def test_pause_and_resume_delivery(emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook) -> None:
    hook.create_queue("orders")
    hook.create_consumer("orders")
    hook.push_messages(["a"], queue="orders")
    assert hook.pause_delivery("orders").settings.delivery_paused is True
    assert hook.pause_delivery("orders").settings.delivery_paused is True  # pausing twice is fine
    with pytest.raises(CloudflareQueuesDeliveryPausedError):
        hook.pull_messages(queue="orders")
    hook.push_messages(["b"], queue="orders")  # pushes are kept while paused
    assert hook.resume_delivery("orders").settings.delivery_paused is False
    assert sorted(m.body for m in hook.pull_messages(queue="orders").messages) == ["a", "b"]


def test_update_consumer_keeps_the_settings_not_given(
    recorded: CloudflareQueuesEmulator, hook: CloudflareQueuesHook
) -> None:
    queue = hook.create_queue("orders")
    created = hook.create_consumer("orders", batch_size=20, visibility_timeout=90, dead_letter_queue="dlq")
    updated = hook.update_consumer("orders", max_retries=7)
    assert updated.consumer_id == created.consumer_id
    assert updated.settings.max_retries == 7
    assert updated.settings.batch_size == 20 and updated.settings.visibility_timeout_ms == 90_000
    assert updated.dead_letter_queue == "dlq"
    # the service replaces a consumer whole (PUT): the hook sent every setting back
    (put,) = _bodies(recorded, f"PUT /{queue.queue_id}/consumers/{created.consumer_id}")
    assert put["settings"] == {"batch_size": 20, "max_retries": 7, "retry_delay": 0, "visibility_timeout_ms": 90_000}
    assert hook.update_consumer("orders", dead_letter_queue="").dead_letter_queue == ""  # "" removes it
    assert hook.list_consumers("orders")[0].settings.max_retries == 7


def test_consumer_changes_name_the_missing_consumer(hook: CloudflareQueuesHook) -> None:
    hook.create_queue("orders")
    with pytest.raises(CloudflareQueuesNotFoundError, match="no HTTP pull consumer") as caught:
        hook.update_consumer("orders", batch_size=5)
    assert "wrangler queues consumer http add orders" in str(caught.value)
    consumer = hook.create_consumer("orders")
    assert hook.delete_consumer("orders") == consumer.consumer_id
    assert hook.list_consumers("orders") == []
    with pytest.raises(CloudflareQueuesNotFoundError):
        hook.delete_consumer("orders")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 101}, "batch_size"),
        ({"max_retries": 101}, "max_retries"),
        ({"retry_delay": 1.5}, "whole seconds"),
        ({"visibility_timeout": 0}, "visibility_timeout"),
        ({"visibility_timeout": timedelta(hours=13)}, "visibility_timeout"),
        ({"dead_letter_queue": "../x"}, "dead-letter queue name"),
    ],
)
def test_bad_consumer_settings_are_refused_before_sending(
    emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook, kwargs: dict[str, object], match: str
) -> None:
    hook.create_queue("orders")
    sent = sum(emulator.app.requests.values())
    with pytest.raises(CloudflareQueuesValidationError, match=match):
        hook.create_consumer("orders", **kwargs)  # type: ignore[arg-type]
    assert sum(emulator.app.requests.values()) == sent


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("bad/name", {}, "queue name"),
        ("", {}, "queue name"),
        ("q", {"delivery_delay": 0.5}, "whole seconds"),
        ("q", {"delivery_delay": 86_401}, "delivery_delay"),
        ("q", {"message_retention_period": 59}, "message_retention_period"),
        ("q", {"message_retention_period": timedelta(days=15)}, "message_retention_period"),
    ],
)
def test_bad_queue_settings_are_refused_before_sending(
    emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook, name: str, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(CloudflareQueuesValidationError, match=match):
        hook.create_queue(name, **kwargs)  # type: ignore[arg-type]
    assert sum(emulator.app.requests.values()) == 0


def test_the_name_cache_follows_delete_and_create(
    emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook
) -> None:
    first = hook.create_queue("scratch")
    hook.push_messages(["x"], queue="scratch")  # cached: scratch -> first id
    assert hook.delete_queue("scratch") == first.queue_id
    with pytest.raises(CloudflareQueuesNotFoundError):
        hook.get_queue("scratch")
    second = hook.create_queue("scratch")
    assert second.queue_id != first.queue_id
    hook.push_messages(["y"], queue="scratch")  # goes to the new queue, not the deleted one's id
    assert hook.get_metrics("scratch").backlog_count == 1
    # someone else deletes and recreates it: the stale cache entry (a 404) is looked up again
    emulator.state.delete_queue(emulator.account_id, second.queue_id)
    third = emulator.create_queue("scratch")
    hook.push_messages(["z"], queue="scratch")
    assert hook.get_queue("scratch").queue_id == third.id
    assert hook.get_metrics("scratch").backlog_count == 1


def test_purge_waits_until_the_service_completes_it(
    emulator: CloudflareQueuesEmulator, connection: str, clock: ManualClock
) -> None:
    emulator.state.purge_seconds = 12
    hook = CloudflareQueuesHook(connection, retry_policy=FAST_RETRY)
    slept: list[float] = []
    hook._sleep = lambda seconds: (slept.append(seconds), clock.advance(seconds))  # type: ignore[func-returns-value]
    hook.create_queue("orders")
    hook.push_messages(range(50), queue="orders")
    status = hook.purge_queue("orders", poll_interval=5)
    assert status.done and status.started_at
    assert slept == [5, 5, 5]  # polled until the service said completed
    assert hook.get_metrics("orders").backlog_count == 0
    assert hook.purge_status("orders").done


def test_purge_without_waiting_and_a_purge_that_outlasts_the_timeout(
    emulator: CloudflareQueuesEmulator, connection: str, clock: ManualClock
) -> None:
    emulator.state.purge_seconds = 600
    hook = CloudflareQueuesHook(connection, retry_policy=FAST_RETRY)
    hook._sleep = clock.advance
    hook.create_queue("orders")
    assert hook.purge_status("orders").started_at is None  # never purged
    hook.push_messages(range(5), queue="orders")
    started = hook.purge_queue("orders", wait=False)
    assert started.started_at and not started.done
    with pytest.raises(CloudflareQueuesError, match="has not completed after 60 s; it goes on in the service"):
        hook.purge_queue("orders", timeout=60, poll_interval=10)
    hook.push_messages(["after"], queue="orders")
    clock.advance(600)
    assert hook.purge_status("orders").done
    assert [m.body for m in emulator.messages("orders")] == ["after"]  # pushed after the purge started: kept


def test_a_lost_create_answer_returns_the_queue_it_created(
    emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook
) -> None:
    emulator.app.faults = ScriptedFaults({"create_queue": ["lost"]})
    queue = hook.create_queue("orders")
    assert emulator.app.requests["create_queue"] == 2  # the resend found the name taken
    assert queue.queue_id == emulator.queue("orders").queue_id
    with pytest.raises(CloudflareQueuesError, match="already exists"):
        hook.create_queue("orders")  # without a lost answer, a taken name is an error


def test_a_lost_delete_answer_is_a_deletion(emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook) -> None:
    queue = hook.create_queue("orders")
    emulator.app.faults = ScriptedFaults({"delete_queue": ["lost"]})
    assert hook.delete_queue("orders") == queue.queue_id
    assert emulator.app.requests["delete_queue"] == 2
    with pytest.raises(CloudflareQueuesNotFoundError):
        hook.delete_queue("orders")  # a plain 404 is still an error


def test_a_read_only_token_fails_with_the_fix(monkeypatch: pytest.MonkeyPatch, clock: ManualClock) -> None:
    with CloudflareQueuesEmulator(clock=clock, read_only_token="cfq-reader-0a1b2c") as emulator:
        emulator.create_queue("orders")
        point_connection(monkeypatch, emulator, "reader", token="cfq-reader-0a1b2c")
        hook = CloudflareQueuesHook("reader", retry_policy=FAST_RETRY)
        assert hook.get_queue("orders").queue_name == "orders"  # reading is allowed
        for change in (
            lambda: hook.create_queue("more"),
            lambda: hook.pause_delivery("orders"),
            lambda: hook.purge_queue("orders"),
            lambda: hook.create_consumer("orders"),
            lambda: hook.delete_queue("orders"),
        ):
            with pytest.raises(CloudflareQueuesAuthError, match="Queues Edit permission") as caught:
                change()
            assert "cfq-reader-0a1b2c" not in str(caught.value)
        assert emulator.queue("orders").settings["delivery_paused"] is False


def test_lost_consumer_answers(emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook) -> None:
    hook.create_queue("orders")
    emulator.app.faults = ScriptedFaults({"create_consumer": ["lost"], "delete_consumer": ["lost"]})
    created = hook.create_consumer("orders", batch_size=7)
    assert emulator.app.requests["create_consumer"] == 2
    assert created.settings.batch_size == 7 and [c.consumer_id for c in hook.list_consumers("orders")] == [
        created.consumer_id
    ]
    assert hook.delete_consumer("orders") == created.consumer_id
    assert emulator.app.requests["delete_consumer"] >= 2 and hook.list_consumers("orders") == []
