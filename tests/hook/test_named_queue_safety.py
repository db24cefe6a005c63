"""
Destructive calls act only on the queue the user named (tried as a hostile user would): never the
connection's default queue, never a queue a stale cached name points to, never a Worker consumer, never
over another client's change; a new queue's name follows Cloudflare's rule and cannot look like an id.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest

from airflow_provider_cfqueues.api.errors import (
    CloudflareQueuesConflictError,
    CloudflareQueuesStaleNameError,
    CloudflareQueuesValidationError,
)
from airflow_provider_cfqueues.api.flows import QUEUE_NAMES, QueueNameCache
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

from ..helpers import FAST_RETRY, point_connection
from ..raw_api import RawApi


@pytest.fixture
def prod_default(emulator: CloudflareQueuesEmulator, monkeypatch: pytest.MonkeyPatch) -> CloudflareQueuesHook:
    """A hook on a connection whose default queue, ``prod-default``, holds 5 messages."""
    emulator.create_queue("prod-default")
    point_connection(monkeypatch, emulator, queue="prod-default")
    hook = CloudflareQueuesHook(retry_policy=FAST_RETRY)
    hook.push_messages(list(range(5)))
    return hook


DESTRUCTIVE: dict[str, Any] = {
    "delete_queue": lambda hook, queue: hook.delete_queue(queue),
    "purge_queue": lambda hook, queue: hook.purge_queue(queue),
    "pause_delivery": lambda hook, queue: hook.pause_delivery(queue),
    "resume_delivery": lambda hook, queue: hook.resume_delivery(queue),
    "update_queue": lambda hook, queue: hook.update_queue(queue, delivery_delay=5),
    "create_consumer": lambda hook, queue: hook.create_consumer(queue),
    "update_consumer": lambda hook, queue: hook.update_consumer(queue, batch_size=5),
    "delete_consumer": lambda hook, queue: hook.delete_consumer(queue),
}


@pytest.mark.parametrize("queue", [None, "", "   "])
@pytest.mark.parametrize("operation", list(DESTRUCTIVE))
def test_a_destructive_call_never_falls_back_to_the_default_queue(
    emulator: CloudflareQueuesEmulator, prod_default: CloudflareQueuesHook, operation: str, queue: str | None
) -> None:
    before = emulator.app.requests.copy()
    with pytest.raises(CloudflareQueuesValidationError, match=rf"acts only on the queue .*{re.escape(repr(queue))}"):
        DESTRUCTIVE[operation](prod_default, queue)
    assert emulator.app.requests == before  # nothing was sent
    assert emulator.metrics("prod-default")["backlog_count"] == 5


@pytest.fixture
def renamed(emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook) -> tuple[str, str]:
    """``orders`` cached as A; then another client renames A to ``orders-archive`` and creates a new ``orders``
    (B). Each holds messages. Returns (A's id, B's id)."""
    a = emulator.create_queue("orders").id
    assert hook.get_queue("orders").queue_id == a  # cached: orders -> A
    api = RawApi(emulator)
    api.ok("PATCH", f"/{a}", {"queue_name": "orders-archive"})
    b = emulator.create_queue("orders").id
    api.push(a, {"archived": 1})
    api.push(b, {"current": 1})
    return a, b


@pytest.mark.parametrize("operation", ["purge_queue", "delete_queue", "pause_delivery", "update_consumer"])
def test_a_stale_cached_name_fails_naming_both_and_acts_on_neither(
    emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook, renamed: tuple[str, str], operation: str
) -> None:
    a, b = renamed
    with pytest.raises(CloudflareQueuesStaleNameError, match=rf"'orders' was known as id {a}, .*'orders-archive'"):
        DESTRUCTIVE[operation](hook, "orders")
    archive = RawApi(emulator).ok("GET", f"/{a}")
    assert archive["queue_name"] == "orders-archive" and not archive["settings"]["delivery_paused"]
    assert emulator.metrics("orders-archive")["backlog_count"] == 1 and emulator.metrics("orders")["backlog_count"] == 1
    # the stale entry is gone: a retry acts on the queue named orders now
    DESTRUCTIVE[operation](hook, "orders")
    assert emulator.metrics("orders-archive")["backlog_count"] == 1  # A untouched
    if operation == "delete_queue":
        names = [queue["queue_name"] for queue in RawApi(emulator).ok("GET")]
        assert "orders" not in names and hook.resolve_queue_id("orders-archive") == a
    elif operation == "purge_queue":
        assert emulator.metrics("orders")["backlog_count"] == 0
    assert b != a


def test_a_cached_name_whose_queue_was_deleted_is_looked_up_again(
    emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook
) -> None:
    first = emulator.create_queue("scratch").id
    hook.get_queue("scratch")
    RawApi(emulator).ok("DELETE", f"/{first}")
    second = emulator.create_queue("scratch").id
    assert hook.delete_queue("scratch") == second != first


def test_name_cache_entries_expire() -> None:
    now = [0.0]
    cache = QueueNameCache(ttl=300, monotonic=lambda: now[0])
    cache.put("api", "acct", "orders", "a" * 32)
    now[0] = 299.0
    assert cache.get("api", "acct", "orders") == "a" * 32
    now[0] = 300.0
    assert cache.get("api", "acct", "orders") is None  # a long-lived triggerer asks the service again
    assert QUEUE_NAMES.ttl == 300


def test_update_consumer_refuses_a_worker_consumer(
    emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook
) -> None:
    queue = emulator.create_queue("jobs", http_pull=False)
    api = RawApi(emulator)
    worker = api.ok("POST", f"/{queue.id}/consumers", {"type": "worker", "script_name": "job-runner"})
    with pytest.raises(CloudflareQueuesValidationError, match=r"'worker' consumer .*'job-runner'.*detach the Worker"):
        hook.update_consumer("jobs", worker["consumer_id"], batch_size=10)
    (consumer,) = api.ok("GET", f"/{queue.id}/consumers")
    assert (consumer["type"], consumer["script_name"]) == ("worker", "job-runner")


def test_update_consumer_does_not_undo_a_change_made_in_between(
    emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook
) -> None:
    """Another client changes max_retries between this update's read and its replace: nothing is sent."""
    queue = emulator.create_queue("jobs", max_retries=3)
    consumer_id = RawApi(emulator).ok("GET", f"/{queue.id}/consumers")[0]["consumer_id"]
    reads = []

    def meddle(method: str, target: str, headers: object, body: bytes, reply: object) -> None:
        if method == "GET" and target.endswith("/consumers"):
            reads.append(target)
            if len(reads) == 1:  # right after this update's first read
                emulator.state.update_consumer(
                    emulator.account_id, queue.id, consumer_id, {"type": "http_pull", "settings": {"max_retries": 7}}
                )

    emulator.app.observers.append(meddle)
    with pytest.raises(CloudflareQueuesConflictError, match=r"changed while it was being updated .*'max_retries': 7"):
        hook.update_consumer("jobs", batch_size=50)
    settings = RawApi(emulator).ok("GET", f"/{queue.id}/consumers")[0]["settings"]
    assert (settings["max_retries"], settings["batch_size"]) == (7, 5)  # the other change stands, ours not sent
    emulator.app.observers.remove(meddle)
    hook.update_consumer("jobs", batch_size=50)  # the retry applies on top of it
    settings = RawApi(emulator).ok("GET", f"/{queue.id}/consumers")[0]["settings"]
    assert (settings["max_retries"], settings["batch_size"]) == (7, 50)


def test_concurrent_consumer_updates_never_lose_a_change(emulator: CloudflareQueuesEmulator, connection: str) -> None:
    """Two updaters at once, 10 rounds: in one process they take turns, so both changes are in every time."""
    queue = emulator.create_queue("jobs")
    for round_number in range(10):
        errors: list[BaseException] = []

        def update(errors: list[BaseException] = errors, **settings: Any) -> None:
            try:
                CloudflareQueuesHook(connection, retry_policy=FAST_RETRY).update_consumer("jobs", **settings)
            except BaseException as err:
                errors.append(err)

        threads = [
            threading.Thread(target=update, kwargs={"max_retries": round_number}),
            threading.Thread(target=update, kwargs={"batch_size": round_number + 1}),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        settings = RawApi(emulator).ok("GET", f"/{queue.id}/consumers")[0]["settings"]
        assert not errors and (settings["max_retries"], settings["batch_size"]) == (round_number, round_number + 1)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("My_Queue", "lowercase letters, digits or '-'"),
        ("-lead", "starting and ending with a letter or digit"),
        ("a" * 64, "1 to 63"),
        ("0123456789abcdef0123456789ABCDEF".lower(), "reads as a queue id"),
    ],
)
def test_new_queue_names_follow_cloudflares_rule_and_never_look_like_an_id(
    emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook, name: str, words: str
) -> None:
    with pytest.raises(CloudflareQueuesValidationError, match=words):
        hook.create_queue(name)
    with pytest.raises(CloudflareQueuesValidationError, match=words.replace("a queue id", "a queue id")):
        hook.create_consumer(emulator.create_queue("fine", http_pull=False).id, dead_letter_queue=name)
    assert emulator.app.requests["create_queue"] == 0


def test_a_queue_is_created_in_a_jurisdiction_and_its_dead_letter_queue_follows(
    emulator: CloudflareQueuesEmulator, hook: CloudflareQueuesHook
) -> None:
    queue = hook.create_queue("eu-orders", jurisdiction="eu")
    assert queue.jurisdiction == "eu" and hook.get_queue("eu-orders").jurisdiction == "eu"
    hook.create_consumer("eu-orders", dead_letter_queue="eu-orders-dlq")  # the service creates it, in the EU
    assert hook.get_queue("eu-orders-dlq").jurisdiction == "eu"
    assert hook.create_queue("anywhere").jurisdiction is None
    with pytest.raises(CloudflareQueuesValidationError, match="jurisdiction must be one of eu, us, fedramp"):
        hook.create_queue("mars-orders", jurisdiction="mars")
