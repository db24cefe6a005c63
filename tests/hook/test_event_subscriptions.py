"""Event subscriptions through the hook, against the emulator: created once by name, enabled and
disabled, deleted by name or id; and an event reaches the destination queue only while enabled."""

from __future__ import annotations

import base64
import json

import pytest

from airflow_provider_cfqueues.api.errors import CloudflareQueuesConflictError, CloudflareQueuesValidationError
from airflow_provider_cfqueues.api.events import SubscriptionEvent, read_event
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

NIGHTLY = {"type": "workflows.workflow", "workflow_name": "nightly"}


def test_a_subscription_from_creation_to_deletion(emulator: CloudflareQueuesEmulator, connection: str) -> None:
    emulator.create_queue("workflow-events")
    hook = CloudflareQueuesHook()
    created = hook.create_event_subscription(
        "nightly-done", "workflow-events", source=NIGHTLY, events=["instance.completed", "instance.errored"]
    )
    assert created.queue_id == emulator.queue("workflow-events").queue_id and created.enabled
    again = hook.create_event_subscription(
        "nightly-done", "workflow-events", source=NIGHTLY, events=["instance.errored", "instance.completed"]
    )
    assert again.id == created.id  # the same name and settings: nothing new
    with pytest.raises(CloudflareQueuesConflictError, match="exists with other settings"):
        hook.create_event_subscription("nightly-done", "workflow-events", source=NIGHTLY, events="instance.started")

    emulator.subscription_event(NIGHTLY, "instance.completed", {"instanceId": "i1"})
    emulator.subscription_event(NIGHTLY, "instance.started", {"instanceId": "i1"})  # not subscribed
    emulator.subscription_event({"type": "workflows.workflow", "workflow_name": "other"}, "instance.completed")
    (message,) = emulator.messages("workflow-events")
    event = read_event(json.loads(base64.b64decode(message.body))).event
    assert isinstance(event, SubscriptionEvent)
    assert (event.type, event.subscription_id, event.payload) == (
        "cf.workflows.workflow.instance.completed",
        created.id,
        {"instanceId": "i1"},
    )

    assert hook.update_event_subscription("nightly-done", enabled=False).enabled is False
    assert emulator.subscription_event(NIGHTLY, "instance.completed") == []  # disabled: nothing sent
    assert hook.update_event_subscription(created.id, enabled=True).enabled is True
    assert [s.name for s in hook.list_event_subscriptions()] == ["nightly-done"]
    assert hook.get_event_subscription("nightly-done") == hook.get_event_subscription(created.id)
    assert hook.delete_event_subscription("nightly-done") == created.id
    assert hook.delete_event_subscription("nightly-done") is None  # already gone: idempotent
    assert hook.list_event_subscriptions() == []


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"source": {"type": "dynamo"}, "events": ["x"]}, "source must be a dict whose type is one of"),
        ({"source": NIGHTLY, "events": []}, "events must be a non-empty list"),
        ({"source": NIGHTLY, "events": ["x"], "queue": ""}, "acts only on the queue it is given"),
    ],
)
def test_bad_subscriptions_are_refused_before_anything_is_sent(
    emulator: CloudflareQueuesEmulator, connection: str, arguments: dict[str, object], says: str
) -> None:
    emulator.create_queue("q")
    with pytest.raises(CloudflareQueuesValidationError, match=says):
        CloudflareQueuesHook().create_event_subscription("s", str(arguments.pop("queue", "q")), **arguments)  # type: ignore[arg-type]
    assert emulator.app.requests["create_subscription"] == 0
