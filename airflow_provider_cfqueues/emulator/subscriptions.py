"""
Event subscriptions, as the emulator keeps them: an account's subscriptions that send a source's
events (KV, Workflows, Workers AI, Vectorize, Images, Workers Builds, R2...) to a queue, and the
message one event delivers (the documented envelope, shared/reference §13).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

#: the source types a subscription may name, and the field naming the resource where there is one
SOURCE_TYPES = {
    "images": None,
    "kv": None,
    "r2": None,
    "superSlurper": None,
    "vectorize": None,
    "workersAi.model": "model_name",
    "workersBuilds.worker": "worker_name",
    "workers.script": "script_tag",
    "workflows.workflow": "workflow_name",
}


class SubscriptionError(ValueError):
    """A subscription the service would refuse: the message says why."""


def _now_iso(now: float) -> str:
    return datetime.fromtimestamp(now, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class Subscriptions:
    """The event subscriptions of one account, by id."""

    by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, body: Mapping[str, Any], queue_ids: set[str], now: float) -> dict[str, Any]:
        name = body.get("name")
        unknown = sorted(set(body) - {"name", "enabled", "source", "events", "destination"})
        if unknown:
            raise SubscriptionError(f"unknown field(s) {', '.join(unknown)}")
        if not isinstance(name, str) or not name:
            raise SubscriptionError("name must be a non-empty string")
        self._check_source(body.get("source"))
        self._check_events(body.get("events"))
        self._check_destination(body.get("destination"), queue_ids)
        enabled = body.get("enabled", True)
        if not isinstance(enabled, bool):
            raise SubscriptionError("enabled must be true or false")
        stamp = _now_iso(now)
        subscription_id = uuid.uuid4().hex
        created: dict[str, Any] = {
            "id": subscription_id,
            "name": name,
            "enabled": enabled,
            "source": dict(body["source"]),
            "events": list(body["events"]),
            "destination": dict(body["destination"]),
            "created_at": stamp,
            "modified_at": stamp,
        }
        with self.lock:
            self.by_id[subscription_id] = created
        return dict(created)

    def update(self, subscription_id: str, body: Mapping[str, Any], queue_ids: set[str], now: float) -> dict[str, Any]:
        unknown = sorted(set(body) - {"name", "enabled", "events", "destination"})
        if unknown:
            raise SubscriptionError(f"unknown field(s) {', '.join(unknown)} (a subscription's source cannot change)")
        if "name" in body and (not isinstance(body["name"], str) or not body["name"]):
            raise SubscriptionError("name must be a non-empty string")
        if "enabled" in body and not isinstance(body["enabled"], bool):
            raise SubscriptionError("enabled must be true or false")
        if "events" in body:
            self._check_events(body["events"])
        if "destination" in body:
            self._check_destination(body["destination"], queue_ids)
        with self.lock:
            current = self.by_id.get(subscription_id)
            if current is None:
                raise KeyError(subscription_id)
            current.update(body, modified_at=_now_iso(now))
            return dict(current)

    def get(self, subscription_id: str) -> dict[str, Any]:
        with self.lock:
            return dict(self.by_id[subscription_id])

    def delete(self, subscription_id: str) -> dict[str, Any]:
        with self.lock:
            return self.by_id.pop(subscription_id)

    def listing(self) -> list[dict[str, Any]]:
        with self.lock:
            return sorted((dict(s) for s in self.by_id.values()), key=lambda s: s["created_at"])

    def targets(self, source: Mapping[str, Any], event: str) -> list[dict[str, Any]]:
        """The enabled subscriptions an event of ``source`` (``{"type", ...name field}``) reaches."""
        name_field = SOURCE_TYPES.get(str(source.get("type")))
        with self.lock:
            return [
                dict(s)
                for s in self.by_id.values()
                if s["enabled"]
                and s["source"].get("type") == source.get("type")
                and (name_field is None or s["source"].get(name_field) in (None, source.get(name_field)))
                and event in s["events"]
            ]

    @staticmethod
    def _check_source(source: object) -> None:
        if not isinstance(source, Mapping) or source.get("type") not in SOURCE_TYPES:
            raise SubscriptionError(f"source.type must be one of {', '.join(SOURCE_TYPES)}")

    @staticmethod
    def _check_events(events: object) -> None:
        if not isinstance(events, list) or not events or any(not isinstance(e, str) or not e for e in events):
            raise SubscriptionError("events must be a non-empty list of event names")

    @staticmethod
    def _check_destination(destination: object, queue_ids: set[str]) -> None:
        if not isinstance(destination, Mapping) or destination.get("type") != "queues.queue":
            raise SubscriptionError('destination must be {"type": "queues.queue", "queue_id": ...}')
        if destination.get("queue_id") not in queue_ids:
            raise SubscriptionError(f"destination queue {destination.get('queue_id')!r} does not exist")


def event_body(
    account_id: str, subscription_id: str, source: Mapping[str, Any], event: str, payload: Any, now: float
) -> dict[str, Any]:
    """The message an event sends: ``{"type": "cf.<source>.<event>", "source", "payload", "metadata"}``."""
    return {
        "type": f"cf.{source['type']}.{event}",
        "source": dict(source),
        "payload": payload,
        "metadata": {
            "accountId": account_id,
            "eventSubscriptionId": subscription_id,
            "eventSchemaVersion": 1,
            "eventTimestamp": _now_iso(now),
        },
    }
