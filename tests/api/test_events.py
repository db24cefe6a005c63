"""Events Cloudflare writes to queues, read as typed events, and the watcher filters over them."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_cfqueues.api.errors import CloudflareQueuesValidationError
from airflow_provider_cfqueues.api.events import R2ObjectEvent, SubscriptionEvent, read_event
from airflow_provider_cfqueues.api.message_filter import parse_message_filter
from airflow_provider_cfqueues.api.models import PulledMessage

#: the shapes the R2 docs give for each action (sizes absent for deletes, copySource for copies)
PUT = {
    "account": "3f4b7e3dcab231cbfdaa90a6a28bd548",
    "action": "PutObject",
    "bucket": "uploads",
    "object": {"key": "in/2026-12-07.csv", "size": 65536, "eTag": "c846ff7a18f28c2e262116d6e8719ef0"},
    "eventTime": "2026-12-07T03:00:00.000Z",
}
COPY = {**PUT, "action": "CopyObject", "copySource": {"bucket": "staging", "object": "tmp/x.csv"}}
DELETE = {**PUT, "action": "DeleteObject", "object": {"key": "in/2026-12-07.csv"}}
WORKFLOW = {
    "type": "cf.workflows.workflow.instance.completed",
    "source": {"type": "workflows.workflow", "workflowName": "nightly"},
    "payload": {"instanceId": "abc", "status": "complete"},
    "metadata": {
        "accountId": "3f4b7e3dcab231cbfdaa90a6a28bd548",
        "eventSubscriptionId": "1a2b3c",
        "eventSchemaVersion": 1,
        "eventTimestamp": "2026-12-07T03:00:01Z",
    },
}


def test_r2_notifications_read_as_object_events() -> None:
    put = read_event(PUT).event
    assert put == R2ObjectEvent(
        account="3f4b7e3dcab231cbfdaa90a6a28bd548",
        bucket="uploads",
        key="in/2026-12-07.csv",
        action="PutObject",
        size=65536,
        etag="c846ff7a18f28c2e262116d6e8719ef0",
        event_time=datetime(2026, 12, 7, 3, tzinfo=timezone.utc),
    )
    assert put.created and not put.deleted
    copy = read_event(COPY).event
    assert isinstance(copy, R2ObjectEvent) and (copy.copy_source_bucket, copy.copy_source_key) == (
        "staging",
        "tmp/x.csv",
    )
    deleted = read_event(DELETE).event
    assert isinstance(deleted, R2ObjectEvent) and deleted.deleted and deleted.size is None
    assert json.loads(json.dumps(put.to_payload()))["kind"] == "r2"  # JSON-safe, for the trigger's payload


def test_event_subscription_events_read_with_their_metadata() -> None:
    event = read_event(WORKFLOW).event
    assert isinstance(event, SubscriptionEvent)
    assert (event.type, event.account_id, event.subscription_id, event.schema_version) == (
        "cf.workflows.workflow.instance.completed",
        "3f4b7e3dcab231cbfdaa90a6a28bd548",
        "1a2b3c",
        1,
    )
    assert event.payload == {"instanceId": "abc", "status": "complete"}
    assert event.matches("cf.workflows.*") and event.matches(event.type) and not event.matches("cf.kv.*")


def test_unknown_fields_are_kept() -> None:
    event = read_event({**PUT, "region": "weur", "object": {**PUT["object"], "versionId": "v2"}}).event
    assert isinstance(event, R2ObjectEvent) and event.extra == {"region": "weur", "object.versionId": "v2"}
    later = {**WORKFLOW, "traceId": "t", "metadata": {**WORKFLOW["metadata"], "region": "eu"}}
    event = read_event(later).event
    assert isinstance(event, SubscriptionEvent) and event.extra == {"traceId": "t", "metadata": {"region": "eu"}}


@pytest.mark.parametrize(
    ("body", "problem", "looked_like_one"),
    [
        ("in/x.csv", "not a JSON object but str", False),
        ([PUT], "not a JSON object but list", False),
        ({"order": 1}, "neither an R2 event notification nor an event-subscription event", False),
        ({**PUT, "object": {"size": 1}}, "object.key is missing", True),
        ({**PUT, "object": {"key": "k", "size": -1}}, "object.size is -1", True),
        ({**PUT, "object": {"key": "k", "size": True}}, "object.size is True", True),
        ({**PUT, "bucket": ""}, "bucket is ''", True),
        ({**PUT, "copySource": "staging/x"}, "copySource is 'staging/x'", True),
        ({**WORKFLOW, "metadata": {**WORKFLOW["metadata"], "eventSchemaVersion": 2}}, "schema version 2", True),
        ({**WORKFLOW, "metadata": "v1"}, "metadata 'v1', not an object", True),
        ({**WORKFLOW, "type": "workflow.done"}, "not cf.<source>.<event>", True),
        ({**WORKFLOW, "metadata": {"eventSchemaVersion": "1"}}, "eventSchemaVersion '1'", True),
    ],
)
def test_hostile_bodies_are_reported_never_raised(body: object, problem: str, looked_like_one: bool) -> None:
    reading = read_event(body)
    assert reading.event is None and reading.problem is not None and problem in reading.problem
    assert reading.looked_like_one is looked_like_one


def test_an_unreadable_event_time_is_kept_aside() -> None:
    event = read_event({**PUT, "eventTime": "yesterday"}).event
    assert isinstance(event, R2ObjectEvent) and event.event_time is None and event.extra == {"eventTime": "yesterday"}


def pulled(body: Any, content_type: str = "json") -> PulledMessage:
    raw = base64.b64encode(json.dumps(body).encode()).decode() if content_type == "json" else body
    return PulledMessage(id="m", lease_id="l", attempts=1, content_type=content_type, raw_body=raw)


def test_pulled_messages_carry_their_event_and_the_payload_its_fields() -> None:
    message = pulled(PUT)
    assert isinstance(message.event, R2ObjectEvent) and message.event_problem is None
    assert message.event_fields()["event"]["key"] == "in/2026-12-07.csv"
    plain = pulled("hello", "text")
    assert plain.event is None and plain.event_problem is not None and plain.event_fields() == {}
    newer = pulled({**WORKFLOW, "metadata": {**WORKFLOW["metadata"], "eventSchemaVersion": 9}})
    assert "schema version 9" in newer.event_fields()["event_problem"]


def payload(body: Any) -> dict[str, Any]:
    return {"id": "m", "body": body}


@pytest.mark.parametrize(
    ("spec", "wanted", "unwanted"),
    [
        ({"r2": {"bucket": "uploads"}}, [PUT, COPY, DELETE], [{**PUT, "bucket": "other"}, WORKFLOW, "x"]),
        ({"r2": {"prefix": "in/", "suffix": ".csv"}}, [PUT], [{**PUT, "object": {"key": "out/a.csv"}}]),
        ({"r2": {"actions": "object-create"}}, [PUT, COPY], [DELETE]),
        ({"r2": {"actions": ["DeleteObject", "LifecycleDeletion"]}}, [DELETE], [PUT]),
        ({"event_type": "cf.workflows.workflow.instance.*"}, [WORKFLOW], [PUT, {**WORKFLOW, "type": "cf.kv.put"}]),
        ({"event_type": ["cf.kv.*", "cf.workflows.workflow.instance.completed"]}, [WORKFLOW], [PUT]),
        (
            [{"r2": {"bucket": "uploads"}}, {"field": "object.size", "in": [65536]}],  # all of them
            [PUT],
            [{**PUT, "object": {"key": "k", "size": 1}}],
        ),
    ],
)
def test_watcher_shorthands_for_r2_and_event_types(spec: Any, wanted: list[Any], unwanted: list[Any]) -> None:
    wants = parse_message_filter(spec)
    assert all(wants(payload(body)) is True for body in wanted)
    assert all(wants(payload(body)) is False for body in unwanted)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"r2": {"bucket": "b", "region": "eu"}}, "unknown: region"),
        ({"r2": {"actions": ["PutObjects"]}}, "r2 actions take PutObject"),
        ({"r2": {"prefix": ""}}, "r2 prefix must be a non-empty string"),
        ({"event_type": "workflows.*"}, "starting with 'cf.'"),
        ([], "an empty list wants nothing"),
        ([{"r2": {}}, {"field": "x"}], r"message_filter\[1\] takes one of"),
    ],
)
def test_a_wrong_shorthand_is_refused_with_the_forms(spec: Any, says: str) -> None:
    with pytest.raises(CloudflareQueuesValidationError, match=says):
        parse_message_filter(spec)
