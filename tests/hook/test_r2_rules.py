"""The hook's R2 event-notification rules against the emulator: idempotent, acting only on what they
are given, never the service's remove-all."""

from __future__ import annotations

import pytest

from airflow_provider_cfqueues.api.errors import CloudflareQueuesConflictError, CloudflareQueuesValidationError
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook


def test_add_list_and_remove_rules(emulator: CloudflareQueuesEmulator, connection: str) -> None:
    emulator.create_queue("loads")
    emulator.create_queue("archive")
    hook = CloudflareQueuesHook()
    rule = hook.add_r2_notification_rule("uploads", "loads", prefix="in/", suffix=".csv", description="csv in")
    assert rule.rule_id and rule.actions == ["PutObject", "CopyObject", "CompleteMultipartUpload"]
    again = hook.add_r2_notification_rule("uploads", "loads", prefix="in/", suffix=".csv")  # idempotent
    assert again.rule_id == rule.rule_id
    deletes = hook.add_r2_notification_rule("uploads", "archive", actions="object-delete", prefix="in/")
    listing = hook.list_r2_notification_rules("uploads")
    assert {(q.queue_name, len(q.rules)) for q in listing.queues} == {("loads", 1), ("archive", 1)}
    # the rule sends what it says: an object created under in/ with .csv reaches loads only
    emulator.r2_object_event("uploads", "in/a.csv", size=10)
    assert len(emulator.messages("loads")) == 1 and not emulator.messages("archive")
    # removal by id only, and only the named queue's
    with pytest.raises(CloudflareQueuesValidationError, match="send to another queue"):
        hook.remove_r2_notification_rules("uploads", "loads", [str(deletes.rule_id)])
    assert hook.remove_r2_notification_rules("uploads", "loads", [str(rule.rule_id), "gone"]) == [rule.rule_id]
    assert hook.remove_r2_notification_rules("uploads", "loads", [str(rule.rule_id)]) == []  # already gone
    assert [q.queue_name for q in hook.list_r2_notification_rules("uploads").queues] == ["archive"]
    with pytest.raises(CloudflareQueuesValidationError, match="by a list of rule ids"):
        hook.remove_r2_notification_rules("uploads", "archive", [])


def test_adding_beside_another_rule_of_the_queue_is_refused(
    emulator: CloudflareQueuesEmulator, connection: str
) -> None:
    emulator.create_queue("loads")
    hook = CloudflareQueuesHook()
    hook.add_r2_notification_rule("uploads", "loads", prefix="in/")
    with pytest.raises(CloudflareQueuesConflictError, match="could replace them"):
        hook.add_r2_notification_rule("uploads", "loads", prefix="other/")
    assert len(hook.list_r2_notification_rules("uploads").queues[0].rules) == 1


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda h: h.add_r2_notification_rule("Up/loads", "loads"), "R2 bucket name"),
        (lambda h: h.add_r2_notification_rule("uploads", "loads", actions=["Put"]), "actions take PutObject"),
        (lambda h: h.add_r2_notification_rule("uploads", "loads", jurisdiction="mars"), "jurisdiction must be one of"),
        (lambda h: h.list_r2_notification_rules("../queues"), "R2 bucket name"),
        (lambda h: h.remove_r2_notification_rules("uploads", "", ["r"]), "acts only on the queue it is given"),
    ],
)
def test_bad_input_is_refused_before_anything_is_sent(
    emulator: CloudflareQueuesEmulator, connection: str, call: object, says: str
) -> None:
    emulator.create_queue("loads")
    before = sum(emulator.app.requests.values())
    with pytest.raises(CloudflareQueuesValidationError, match=says):
        call(CloudflareQueuesHook())  # type: ignore[operator]
    assert sum(emulator.app.requests.values()) - before <= 1  # at most the queue lookup


def test_rules_follow_the_buckets_jurisdiction(emulator: CloudflareQueuesEmulator, connection: str) -> None:
    emulator.create_queue("eu-loads")
    hook = CloudflareQueuesHook()
    hook.add_r2_notification_rule("uploads", "eu-loads", jurisdiction="eu")
    assert hook.list_r2_notification_rules("uploads").queues == []
    assert len(hook.list_r2_notification_rules("uploads", jurisdiction="eu").queues) == 1
    assert emulator.r2_object_event("uploads", "a.csv", size=1) == []
    assert len(emulator.r2_object_event("uploads", "a.csv", size=1, jurisdiction="eu")) == 1
