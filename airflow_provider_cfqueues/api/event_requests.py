"""
Events Cloudflare writes to queues, as requests (see :mod:`.operations`): R2 event-notification rules
(a bucket's rules sending its object events to queues; bucket names validated so that no input can
change the URL path; the bucket's jurisdiction in the ``cf-r2-jurisdiction`` header) and event
subscriptions (a source's events sent to a queue).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter

from .errors import CloudflareQueuesValidationError
from .models import Envelope, EventSubscription, R2BucketRules
from .operations import ANY_ANSWER, ApiRequest, validate_account_id, validate_id

#: R2's bucket names: 3 to 63 lowercase letters, digits and hyphens, starting and ending with a letter or digit
BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
JURISDICTIONS = ("default", "eu", "us", "fedramp", "fedramp-high")

R2_BUCKET_RULES_ANSWER: TypeAdapter[Envelope[R2BucketRules]] = TypeAdapter(Envelope[R2BucketRules])
SUBSCRIPTION_ANSWER: TypeAdapter[Envelope[EventSubscription]] = TypeAdapter(Envelope[EventSubscription])
SUBSCRIPTIONS_ANSWER: TypeAdapter[Envelope[list[EventSubscription]]] = TypeAdapter(Envelope[list[EventSubscription]])
#: an event subscription's id (it becomes part of the URL path)
SUBSCRIPTION_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: the source types of event subscriptions
SOURCE_TYPES = (
    "images",
    "kv",
    "r2",
    "superSlurper",
    "vectorize",
    "workersAi.model",
    "workersBuilds.worker",
    "workers.script",
    "workflows.workflow",
)


def validate_bucket(bucket: object) -> str:
    if not isinstance(bucket, str) or not BUCKET_RE.fullmatch(bucket):
        raise CloudflareQueuesValidationError(
            f"bucket must be an R2 bucket name (3 to 63 lowercase letters, digits and '-'), got {bucket!r}"
        )
    return bucket


def validate_jurisdiction(jurisdiction: object) -> str:
    value = "default" if jurisdiction is None else jurisdiction
    if value not in JURISDICTIONS:
        raise CloudflareQueuesValidationError(f"jurisdiction must be one of {', '.join(JURISDICTIONS)}, got {value!r}")
    return str(value)


def _path(account_id: str, bucket: str, queue_id: str | None = None) -> str:
    path = f"/accounts/{validate_account_id(account_id)}/event_notifications/r2/{validate_bucket(bucket)}/configuration"
    return path if queue_id is None else f"{path}/queues/{validate_id(queue_id, 'queue_id')}"


def _headers(jurisdiction: str | None) -> tuple[tuple[str, str], ...]:
    value = validate_jurisdiction(jurisdiction)
    return () if value == "default" else (("cf-r2-jurisdiction", value),)


def bucket_rules_request(account_id: str, bucket: str, jurisdiction: str | None) -> ApiRequest:
    return ApiRequest(
        "r2_list_rules", "GET", _path(account_id, bucket), headers=_headers(jurisdiction), answer=R2_BUCKET_RULES_ANSWER
    )


def add_rules_request(
    account_id: str, bucket: str, queue_id: str, rules: Sequence[dict[str, Any]], jurisdiction: str | None
) -> ApiRequest:
    body = json.dumps({"rules": list(rules)}, separators=(",", ":")).encode()
    return ApiRequest(
        "r2_put_rules",
        "PUT",
        _path(account_id, bucket, queue_id),
        body,
        headers=_headers(jurisdiction),
        answer=ANY_ANSWER,
    )


def remove_rules_request(
    account_id: str, bucket: str, queue_id: str, rule_ids: Sequence[str], jurisdiction: str | None
) -> ApiRequest:
    """Delete ``rule_ids`` of the queue. Never without ids: the service's DELETE without a body removes
    every rule of the queue on the bucket."""
    if not rule_ids or any(not isinstance(r, str) or not r for r in rule_ids):
        raise CloudflareQueuesValidationError(f"name the rules to remove by their rule ids, got {rule_ids!r}")
    body = json.dumps({"ruleIds": list(rule_ids)}, separators=(",", ":")).encode()
    return ApiRequest(
        "r2_delete_rules",
        "DELETE",
        _path(account_id, bucket, queue_id),
        body,
        headers=_headers(jurisdiction),
        answer=ANY_ANSWER,
    )


def _subscriptions_path(account_id: str, subscription_id: str | None = None) -> str:
    path = f"/accounts/{validate_account_id(account_id)}/event_subscriptions/subscriptions"
    if subscription_id is None:
        return path
    if not isinstance(subscription_id, str) or not SUBSCRIPTION_ID_RE.fullmatch(subscription_id):
        raise CloudflareQueuesValidationError(
            f"an event subscription id is letters, digits, '-' or '_', got {subscription_id!r}"
        )
    return f"{path}/{subscription_id}"


def validate_source(source: object) -> dict[str, Any]:
    if not isinstance(source, dict) or source.get("type") not in SOURCE_TYPES:
        raise CloudflareQueuesValidationError(
            f"source must be a dict whose type is one of {', '.join(SOURCE_TYPES)} (with workflow_name, "
            f"worker_name or model_name where the source has one), got {source!r}"
        )
    return dict(source)


def validate_events(events: object) -> list[str]:
    if isinstance(events, str):
        events = [events]
    if not isinstance(events, Sequence) or not events or any(not isinstance(e, str) or not e for e in events):
        raise CloudflareQueuesValidationError(f"events must be a non-empty list of event names, got {events!r}")
    return list(events)


def list_subscriptions_request(account_id: str, page: int) -> ApiRequest:
    params = (("page", str(page)), ("per_page", "100"))
    return ApiRequest(
        "list_subscriptions", "GET", _subscriptions_path(account_id), params=params, answer=SUBSCRIPTIONS_ANSWER
    )


def get_subscription_request(account_id: str, subscription_id: str) -> ApiRequest:
    return ApiRequest(
        "get_subscription", "GET", _subscriptions_path(account_id, subscription_id), answer=SUBSCRIPTION_ANSWER
    )


def create_subscription_request(account_id: str, body: dict[str, Any]) -> ApiRequest:
    encoded = json.dumps(body, separators=(",", ":")).encode()
    return ApiRequest(
        "create_subscription", "POST", _subscriptions_path(account_id), encoded, answer=SUBSCRIPTION_ANSWER
    )


def update_subscription_request(account_id: str, subscription_id: str, body: dict[str, Any]) -> ApiRequest:
    encoded = json.dumps(body, separators=(",", ":")).encode()
    return ApiRequest(
        "update_subscription",
        "PATCH",
        _subscriptions_path(account_id, subscription_id),
        encoded,
        answer=SUBSCRIPTION_ANSWER,
    )


def delete_subscription_request(account_id: str, subscription_id: str) -> ApiRequest:
    return ApiRequest(
        "delete_subscription", "DELETE", _subscriptions_path(account_id, subscription_id), answer=ANY_ANSWER
    )
