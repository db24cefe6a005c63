"""R2 event-notification rules and event subscriptions: what the docs state is asserted, the rest
recorded. On a live account the R2 case needs a bucket of the test's own
(``CFQUEUES_CONTRACT_R2_BUCKET``); a subscription the case creates is deleted by its id when it ends."""

from __future__ import annotations

import os

import pytest

from .target import Target

BUCKET_ENV = "CFQUEUES_CONTRACT_R2_BUCKET"


def test_r2_notification_rules(contract: Target) -> None:
    bucket = os.environ.get(BUCKET_ENV) if contract.live else "cfq-contract-uploads"
    if not bucket:
        pytest.skip(f"set {BUCKET_ENV} to an R2 bucket of the test's own to check notification rules live")
    queue = contract.queue("r2-rules", consumer=False)
    hook = contract.hook
    rule = hook.add_r2_notification_rule(bucket, queue.id, prefix="in/", suffix=".csv", description="contract")
    try:
        listed = hook.list_r2_notification_rules(bucket).of_queue(queue.id)
        contract.expect(
            "rule listed",
            "GET …/configuration lists the queue's rule with its actions, prefix and suffix",
            [(["CompleteMultipartUpload", "CopyObject", "PutObject"], "in/", ".csv")],
            [(sorted(r.actions), r.prefix, r.suffix) for r in listed],
        )
        contract.expect_that(
            "rule id", "a listed rule has a ruleId", [r.rule_id for r in listed], all(r.rule_id for r in listed)
        )
        again = hook.add_r2_notification_rule(bucket, queue.id, prefix="in/", suffix=".csv")
        contract.expect("add twice", "adding the same rule again leaves one rule", rule.rule_id, again.rule_id)
    finally:
        removed = hook.remove_r2_notification_rules(bucket, queue.id, [str(rule.rule_id)])
    contract.expect("remove by id", "DELETE with ruleIds removes that rule", [rule.rule_id], removed)
    contract.expect(
        "after removal",
        "the queue has no rule left on the bucket",
        [],
        hook.list_r2_notification_rules(bucket).of_queue(queue.id),
    )


def test_event_subscriptions(contract: Target) -> None:
    queue = contract.queue("subscriptions", consumer=False)
    hook = contract.hook
    name = f"{queue.name}-kv"
    created = hook.create_event_subscription(name, queue.id, source={"type": "kv"}, events=["namespace.created"])
    try:
        contract.expect(
            "created",
            "a created subscription has the name, source, events and destination it was given, enabled",
            [name, "kv", ["namespace.created"], queue.id, True],
            [created.name, created.source.get("type"), created.events, created.queue_id, created.enabled],
        )
        disabled = hook.update_event_subscription(created.id, enabled=False)
        contract.expect("disabled", "PATCH enabled=false disables it", False, disabled.enabled)
        found = hook.get_event_subscription(name)
        contract.expect("found by name", "it is listed under its name", created.id, found.id if found else None)
    finally:
        deleted = hook.delete_event_subscription(created.id)
    contract.expect("deleted", "DELETE removes it", created.id, deleted)
    contract.expect("gone", "it is no longer listed", None, hook.get_event_subscription(created.id))
