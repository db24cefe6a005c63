"""Paused delivery, purge, and the backlog metrics after each step of a message's life."""

from __future__ import annotations

from .target import Target


def test_paused_delivery(contract: Target) -> None:
    queue = contract.queue("paused")
    contract.hook.push_message("before", queue=queue.id)
    paused = contract.hook.pause_delivery(queue.id)
    contract.expect(
        "settings after pause", "pausing sets settings.delivery_paused", True, paused.settings.delivery_paused
    )
    pushed = contract.push(queue, "while paused", content_type="text")
    contract.expect("push while paused", "a paused queue still accepts pushes", 200, pushed.status)
    pull = contract.call("POST", f"/{queue.id}/messages/pull", {})
    contract.expect(
        "pull while paused",
        "a pull on a paused queue gets 409 naming queue_delivery_paused",
        [409, True],
        [pull.status, "queue_delivery_paused" in pull.error_text],
    )
    contract.observe("paused pull code", "the error code of a paused pull (not documented)", pull.error_code, 10252)
    metrics = contract.settled_metrics(queue, 2)
    contract.expect("backlog while paused", "pushes to a paused queue are stored", 2, metrics["backlog_count"])
    contract.hook.resume_delivery(queue.id)
    delivered = contract.collect(queue, 2)
    contract.expect(
        "after resume",
        "resuming delivers what was kept",
        ["before", "while paused"],
        sorted(message["body"] for message in delivered),
    )
    contract.ack(queue, [message["lease_id"] for message in delivered])


def test_purge(contract: Target) -> None:
    queue = contract.queue("purge")
    contract.hook.push_messages(["a", "b", "c"], queue=queue.id)
    before = contract.ok("GET", f"/{queue.id}/purge")
    contract.observe(
        "status before any purge",
        "what GET …/purge answers before a purge",
        before,
        {"started_at": None, "completed": None},
    )
    unconfirmed = contract.call("POST", f"/{queue.id}/purge", {})
    contract.observe(
        "purge without confirmation",
        "a purge body without delete_messages_permanently (status, code)",
        [unconfirmed.status, unconfirmed.error_code],
        [400, 10207],
    )
    status = contract.hook.purge_queue(queue.id, timeout=120, poll_interval=2 if contract.live else 1)
    contract.expect_that(
        "purge status",
        "GET …/purge reports started_at and, in the end, completed",
        [bool(status.started_at), status.completed],
        bool(status.started_at) and status.done,
    )
    metrics = contract.settled_metrics(queue, 0)
    contract.expect("backlog after purge", "a purge deletes every stored message", 0, metrics["backlog_count"])
    contract.expect("pull after purge", "nothing is left to deliver", [], contract.pull(queue))


def test_metrics_through_a_message_life(contract: Target) -> None:
    queue = contract.queue("metrics")
    empty = contract.metrics(queue)
    contract.expect(
        "empty queue",
        "an empty queue: backlog 0, oldest timestamp 0",
        [0, 0],
        [empty["backlog_count"], empty["oldest_message_timestamp_ms"]],
    )
    contract.hook.push_messages(["x" * 100, "y" * 200, "z" * 300], queue=queue.id)
    pushed = contract.settled_metrics(queue, 3)
    contract.observe(
        "after 3 pushes (600 body bytes)",
        "backlog_count and backlog_bytes (how are bytes counted?)",
        [pushed["backlog_count"], pushed["backlog_bytes"]],
        [3, 600],
    )
    leased = contract.collect(queue, 3)
    oldest = min(message["timestamp_ms"] for message in leased)
    contract.observe(
        "oldest_message_timestamp_ms",
        "is it the oldest message's timestamp_ms?",
        pushed["oldest_message_timestamp_ms"] == oldest,
        True,
    )
    while_leased = contract.metrics(queue)
    contract.observe(
        "while leased", "do leased (unacknowledged) messages count in the backlog?", while_leased["backlog_count"], 3
    )
    contract.ack(queue, [message["lease_id"] for message in leased[:2]])
    one_left = contract.settled_metrics(queue, 1)
    contract.observe("after 2 acks", "backlog_count once 2 of 3 are acknowledged", one_left["backlog_count"], 1)
    contract.ack(queue, [leased[2]["lease_id"]])
    done = contract.settled_metrics(queue, 0)
    contract.expect(
        "after the last ack",
        "the backlog is empty again: backlog 0, oldest timestamp 0",
        [0, 0],
        [done["backlog_count"], done["oldest_message_timestamp_ms"]],
    )
