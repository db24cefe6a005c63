"""The R2 notification operators against the emulator: the rule they add sends what it says, task
retries change nothing, and removal takes only the named queue's rules."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_cfqueues.api.errors import CloudflareQueuesValidationError
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.operators.events import (
    CloudflareQueuesAddR2NotificationRuleOperator,
    CloudflareQueuesRemoveR2NotificationRulesOperator,
)


def test_add_then_remove_the_rule_from_a_dag(emulator: CloudflareQueuesEmulator, connection: str) -> None:
    emulator.create_queue("loads")
    add = CloudflareQueuesAddR2NotificationRuleOperator(
        task_id="watch_uploads", bucket="uploads", cloudflare_queue="loads", prefix="in/", suffix=".csv"
    )
    first: dict[str, Any] = add.execute({})  # type: ignore[arg-type]
    assert add.execute({}) == first  # a task retry: the same rule, nothing added  # type: ignore[arg-type]
    emulator.r2_object_event("uploads", "in/a.csv", size=3)
    emulator.r2_object_event("uploads", "in/a.txt", size=3)
    assert len(emulator.messages("loads")) == 1
    remove = CloudflareQueuesRemoveR2NotificationRulesOperator(
        task_id="unwatch", bucket="uploads", cloudflare_queue="loads", rule_ids=first["rule_id"]
    )
    assert remove.execute({}) == [first["rule_id"]]  # type: ignore[arg-type]
    assert remove.execute({}) == []  # type: ignore[arg-type]
    assert emulator.r2_object_event("uploads", "in/b.csv", size=3) == []


def test_they_need_a_named_queue_and_a_real_bucket_name(emulator: CloudflareQueuesEmulator, connection: str) -> None:
    with pytest.raises(CloudflareQueuesValidationError, match="R2 bucket name"):
        CloudflareQueuesAddR2NotificationRuleOperator(task_id="t", bucket="Up Loads", cloudflare_queue="loads")
    without_queue = CloudflareQueuesAddR2NotificationRuleOperator(task_id="t", bucket="uploads")
    with pytest.raises(CloudflareQueuesValidationError, match="never on the connection's default queue"):
        without_queue.execute({})  # type: ignore[arg-type]


def test_event_subscription_operators(emulator: CloudflareQueuesEmulator, connection: str) -> None:
    from airflow_provider_cfqueues.operators.events import (
        CloudflareQueuesCreateEventSubscriptionOperator,
        CloudflareQueuesDeleteEventSubscriptionOperator,
        CloudflareQueuesUpdateEventSubscriptionOperator,
    )

    emulator.create_queue("kv-events")
    create = CloudflareQueuesCreateEventSubscriptionOperator(
        task_id="subscribe", subscription="kv-writes", cloudflare_queue="kv-events", source={"type": "kv"}, events="put"
    )
    subscription_id = create.execute({})  # type: ignore[arg-type]
    assert create.execute({}) == subscription_id  # a retry: the same subscription  # type: ignore[arg-type]
    assert len(emulator.subscription_event({"type": "kv"}, "put", {"key": "a"})) == 1
    pause = CloudflareQueuesUpdateEventSubscriptionOperator(
        task_id="pause",
        subscription="kv-writes",
        enabled=False,
        queue="maintenance-workers",  # executor queue: fine
    )
    assert pause.execute({}) == {"id": subscription_id, "enabled": False, "events": ["put"]}  # type: ignore[arg-type]
    assert emulator.subscription_event({"type": "kv"}, "put") == []
    delete = CloudflareQueuesDeleteEventSubscriptionOperator(task_id="unsubscribe", subscription=subscription_id)
    assert delete.execute({}) == subscription_id  # type: ignore[arg-type]
    assert delete.execute({}) is None  # type: ignore[arg-type]
