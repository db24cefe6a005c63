"""
``RejectMessage``: a message that can never succeed leaves on its first delivery, to ``on_poison`` or the
consumer's dead-letter queue, in a poison envelope that says where it came from and why; with nowhere to
go, the first rejection fails the task and acks nothing of it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from airflow_provider_cfqueues.api.errors import CloudflareQueuesConfigError
from airflow_provider_cfqueues.api.models import PulledMessage
from airflow_provider_cfqueues.consume.poison import PoisonEnvelope, Rejected, RejectMessage
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook
from airflow_provider_cfqueues.operators.consume import CloudflareQueuesPullAndAckOperator


def parse(message: PulledMessage) -> None:
    """A process() that rejects bodies it can never read, and fails on what may work later."""
    if not isinstance(message.body, dict):
        raise RejectMessage(f"not a JSON object: {str(message.body)[:20]!r}")
    if message.body.get("db_down"):
        raise ConnectionError("database unavailable")


def envelopes(emulator: CloudflareQueuesEmulator, queue: str) -> list[PoisonEnvelope]:
    return [PoisonEnvelope.read(json.loads(base64.b64decode(m.body))) for m in emulator.messages(queue)]


def drain(queue: str = "q", **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("process", parse)
    operator = CloudflareQueuesPullAndAckOperator(task_id="drain", cloudflare_queue=queue, **kwargs)
    return operator.execute({"run_id": "manual__1"})  # type: ignore[arg-type,return-value]


def test_a_rejected_message_goes_to_on_poison_on_its_first_delivery(
    emulator: CloudflareQueuesEmulator, connection: str
) -> None:
    emulator.create_queue("q")
    emulator.create_queue("q-poison", http_pull=False)
    hook = CloudflareQueuesHook(queue="q")
    hook.push_messages([{"n": 1}, "{not json", {"n": 2}, {"n": 3, "db_down": True}])
    result = drain(on_poison="q-poison", fail_on_error=False)
    assert (result["acked"], result["rejected"], result["poisoned"], result["failed"]) == (3, 1, 0, 1)
    (envelope,) = envelopes(emulator, "q-poison")
    assert envelope.reason == "rejected by process(): not a JSON object: '{not json'"
    assert envelope.source["queue"] == "q" and envelope.source["queue_id"] == emulator.queue("q").queue_id
    assert (envelope.source["attempts"], envelope.source["content_type"]) == (1, "text")
    assert set(envelope.routed_by) == {"dag_id", "task_id", "run_id", "map_index", "try_number"}
    assert (envelope.routed_by["task_id"], envelope.routed_by["run_id"]) == ("drain", "manual__1")
    assert envelope.original().body == "{not json" and envelope.original().content_type == "text"
    # the rejected message spent one delivery; the failed one keeps its others for when the database is back
    (left,) = emulator.messages("q")
    assert (left.attempts, left.state) == (1, "delayed")


def test_without_on_poison_a_copy_goes_to_the_consumers_dead_letter_queue(
    emulator: CloudflareQueuesEmulator, connection: str
) -> None:
    emulator.create_queue("q", dead_letter_queue="q-dlq", max_retries=5)
    CloudflareQueuesHook(queue="q").push_messages(["garbage", {"n": 1}])
    result = drain()
    assert (result["acked"], result["rejected"], result["failed"]) == (2, 1, 0)
    assert emulator.metrics("q")["backlog_count"] == 0  # not 6 deliveries later: now
    (envelope,) = envelopes(emulator, "q-dlq")
    assert envelope.source["message_id"] and "not a JSON object" in envelope.reason


def test_with_nowhere_to_route_the_first_rejection_fails_the_task_and_acks_nothing_of_it(
    emulator: CloudflareQueuesEmulator, connection: str
) -> None:
    emulator.create_queue("q")
    CloudflareQueuesHook(queue="q").push_messages(["garbage"])
    with pytest.raises(CloudflareQueuesConfigError, match=r"nowhere to route it.*on_poison=.*dead-letter queue"):
        drain()
    (kept,) = emulator.messages("q")
    assert kept.attempts == 1 and kept.state == "delayed"  # given back like a failure, not acked


def test_batch_mode_rejects_what_it_returns_in_rejected_or_the_whole_batch_when_it_raises(
    emulator: CloudflareQueuesEmulator, connection: str
) -> None:
    emulator.create_queue("q")
    emulator.create_queue("q-poison", http_pull=False)
    hook = CloudflareQueuesHook(queue="q")
    hook.push_messages([{"n": n} for n in range(6)])

    def some(messages: list[PulledMessage]) -> list[Any]:
        return [Rejected(m, f"schema of n={m.body['n']}") for m in messages if m.body["n"] % 3 == 0]

    result = drain(process=some, process_mode="batch", on_poison="q-poison")
    assert (result["acked"], result["rejected"], result["failed"]) == (6, 2, 0)
    assert sorted(e.reason for e in envelopes(emulator, "q-poison")) == [
        "rejected by process(): schema of n=0",
        "rejected by process(): schema of n=3",
    ]
    hook.push_messages([{"n": 7}, {"n": 8}])

    def everything(messages: list[PulledMessage]) -> None:
        raise RejectMessage("the export format changed")

    result = drain(process=everything, process_mode="batch", on_poison="q-poison")
    assert (result["acked"], result["rejected"]) == (2, 2)
    assert len(emulator.messages("q-poison")) == 4


def test_a_callable_on_poison_gets_the_reason_when_it_asks_for_it(
    emulator: CloudflareQueuesEmulator, connection: str
) -> None:
    emulator.create_queue("q", max_retries=1)
    CloudflareQueuesHook(queue="q").push_messages(["garbage", {"n": 1, "db_down": True}])
    seen: list[tuple[str, str]] = []
    plain: list[str] = []
    drain(on_poison=lambda message, reason: seen.append((message.body, reason)), fail_on_error=False)
    assert seen == [("garbage", "rejected by process(): not a JSON object: 'garbage'")]
    emulator.clock.advance(3600)
    drain(on_poison=lambda message: plain.append(message.id), max_attempts=2)  # no reason parameter: not given it
    assert len(plain) == 1 and emulator.metrics("q")["backlog_count"] == 0


def test_an_envelope_over_the_message_limit_is_not_routed_and_the_message_not_acked(
    emulator: CloudflareQueuesEmulator, connection: str
) -> None:
    emulator.create_queue("q", max_retries=3)
    emulator.create_queue("q-poison", http_pull=False)
    CloudflareQueuesHook(queue="q").push_messages(["x" * 127_800])
    result = drain(on_poison="q-poison", fail_on_error=False)
    assert (result["rejected"], result["failed"], result["acked"]) == (0, 1, 0)
    assert emulator.metrics("q-poison")["backlog_count"] == 0
    (kept,) = emulator.messages("q")
    assert kept.attempts == 1  # left to the consumer's retries and dead-letter queue


def test_the_replay_recipe_of_the_docs_puts_the_original_back(
    emulator: CloudflareQueuesEmulator, connection: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/operators.md, "The poison envelope": its snippet, run as written against the poison queue."""
    from pathlib import Path

    emulator.create_queue("orders")
    emulator.create_queue("orders-poison")
    hook = CloudflareQueuesHook(queue="orders")
    hook.push_messages(["{not json", {"n": 1}])
    drain("orders", on_poison="orders-poison")
    docs = (Path(__file__).parents[2] / "docs" / "operators.md").read_text()
    recipe = next(block for block in docs.split("```python\n") if "PoisonEnvelope.read(message)" in block)
    exec(recipe.split("```", 1)[0], {"hook": hook})  # noqa: S102 - our own documentation
    assert "not a JSON object" in capsys.readouterr().out
    assert emulator.metrics("orders-poison")["backlog_count"] == 0
    (back,) = emulator.messages("orders")  # the original, as it was pushed: text
    assert (back.body, back.content_type, back.attempts) == ("{not json", "text", 0)
