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
    raw = contract.ok("GET", f"/{queue.id}/purge")
    contract.observe(
        "purge status shape",
        "the type of completed ('string' in both SDKs, a boolean complete in wrangler), once it completed",
        sorted(f"{key}: {type(value).__name__}" for key, value in raw.items() if key != "started_at"),
        ["completed: bool"],
    )
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


def test_peek_and_purge_by_reference(contract: Target) -> None:
    queue = contract.queue("peek")
    contract.hook.push_messages([{"n": n} for n in range(4)], queue=queue.id)
    contract.settled_metrics(queue, 4)
    peeked = contract.ok("POST", f"/{queue.id}/messages/peek", {"batch_size": 4})
    messages = peeked.get("messages") or []
    contract.expect_that(
        "peek shows messages with a ref",
        "POST …/messages/peek returns messages carrying an opaque ref (SDK 5.9.0 types)",
        [sorted(message) for message in messages[:1]],
        bool(messages) and all(isinstance(message.get("ref"), str) and message["ref"] for message in messages),
    )
    contract.observe(
        "peek leases nothing",
        "after a peek, a pull still delivers every message on its first attempt (attempts of a pull of 4)",
        sorted(message["attempts"] for message in contract.collect(queue, 4, visibility_timeout_ms=1_000)),
        [1, 1, 1, 1],
    )
    contract.wait(2)  # the leases of that pull expire: the messages are available again
    again = contract.ok("POST", f"/{queue.id}/messages/peek", {"batch_size": 4}).get("messages") or []
    chosen = again[:2]
    purge = contract.call("POST", f"/{queue.id}/messages/purge", {"refs": [{"ref": m["ref"]} for m in chosen]})
    contract.expect("purge by ref", "POST …/messages/purge with refs is accepted", 200, purge.status)
    metrics = contract.settled_metrics(queue, 2)
    contract.observe(
        "backlog after purging 2 by ref",
        "purged messages are gone; 'does not affect metrics' is read as: no delivery is counted",
        metrics["backlog_count"],
        2,
    )
    stale = contract.call("POST", f"/{queue.id}/messages/purge", {"refs": [{"ref": m["ref"]} for m in messages[:1]]})
    contract.observe(
        "a ref whose message was delivered since the peek",
        "refused, warned, or purged anyway? (status, warned)",
        [stale.status, bool((stale.payload.get("result") or {}).get("warnings"))],
        [200, True],
    )
