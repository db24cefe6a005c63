"""
R2 event notifications, as the emulator keeps them: rules that send a bucket's object events to
queues, and the messages an object event delivers (the documented body, shared/reference §13).

A rule has actions (``PutObject``, ``CopyObject``, ``CompleteMultipartUpload``, ``DeleteObject``,
``LifecycleDeletion``), an optional key prefix and suffix, and a description; rules of one bucket
must not overlap (two rules overlap when they share an action and some key could match both). The
emulator knows no buckets: a rule may name any bucket, and "an object was put" is said by the test
(:meth:`~airflow_provider_cfqueues.emulator.CloudflareQueuesEmulator.r2_object_event`).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

#: the actions a rule may name, and the jurisdictions a bucket may be in (the ``cf-r2-jurisdiction`` header)
ACTIONS = ("PutObject", "CopyObject", "DeleteObject", "CompleteMultipartUpload", "LifecycleDeletion")
JURISDICTIONS = ("default", "eu", "us", "fedramp", "fedramp-high")


class RuleError(ValueError):
    """A rule the service would refuse: the message says why."""


@dataclass(frozen=True)
class NotificationRule:
    """
    One rule of a bucket.

    :param rule_id: the rule's id.
    :param actions: the object actions it sends.
    :param prefix: the key prefix (``""``: any).
    :param suffix: the key suffix (``""``: any).
    :param description: free text.
    :param created_at: when it was created (ISO 8601).
    """

    rule_id: str
    actions: tuple[str, ...]
    prefix: str = ""
    suffix: str = ""
    description: str | None = None
    created_at: str = ""

    def matches(self, key: str, action: str) -> bool:
        return action in self.actions and key.startswith(self.prefix) and key.endswith(self.suffix)

    def overlaps(self, other: NotificationRule) -> bool:
        """Whether an object event could match both (a shared action, and keys both filters admit)."""
        if not set(self.actions) & set(other.actions):
            return False
        prefixes = self.prefix.startswith(other.prefix) or other.prefix.startswith(self.prefix)
        suffixes = self.suffix.endswith(other.suffix) or other.suffix.endswith(self.suffix)
        return prefixes and suffixes

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"ruleId": self.rule_id, "createdAt": self.created_at, "actions": list(self.actions)}
        if self.prefix:
            wire["prefix"] = self.prefix
        if self.suffix:
            wire["suffix"] = self.suffix
        if self.description is not None:
            wire["description"] = self.description
        return wire


@dataclass
class R2Notifications:
    """The notification rules of one account: (jurisdiction, bucket) -> queue id -> rules."""

    rules: dict[tuple[str, str], dict[str, list[NotificationRule]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self, jurisdiction: str, bucket: str, queue_id: str, specs: Sequence[Mapping[str, Any]], now: float
    ) -> list[NotificationRule]:
        """Validate ``specs`` and add them (appending to the queue's rules); refuse any overlap, whole."""
        if jurisdiction not in JURISDICTIONS:
            raise RuleError(f"jurisdiction {jurisdiction!r} is not one of {', '.join(JURISDICTIONS)}")
        created = datetime.fromtimestamp(now, tz=timezone.utc).isoformat().replace("+00:00", "Z")
        new = [self._rule(spec, created, index) for index, spec in enumerate(specs)]
        if not new:
            raise RuleError("rules: give at least one rule")
        with self.lock:
            by_queue = self.rules.setdefault((jurisdiction, bucket), {})
            existing = [rule for rules in by_queue.values() for rule in rules]
            for index, rule in enumerate(new):
                for other in existing + new[:index]:
                    if rule.overlaps(other):
                        raise RuleError(
                            f"rules.{index} overlaps rule {other.rule_id or 'of this request'} of bucket {bucket} "
                            f"(actions {', '.join(sorted(set(rule.actions) & set(other.actions)))}, prefix "
                            f"{rule.prefix!r} / {other.prefix!r}, suffix {rule.suffix!r} / {other.suffix!r})"
                        )
            by_queue.setdefault(queue_id, []).extend(new)
        return new

    def remove(self, jurisdiction: str, bucket: str, queue_id: str, rule_ids: Iterable[str] | None) -> int:
        """Remove the queue's rules with ``rule_ids``, or every rule of the queue when ``None``; how many."""
        with self.lock:
            by_queue = self.rules.get((jurisdiction, bucket), {})
            rules = by_queue.get(queue_id, [])
            wanted = None if rule_ids is None else set(rule_ids)
            kept = [] if wanted is None else [r for r in rules if r.rule_id not in wanted]
            removed = len(rules) - len(kept)
            if kept:
                by_queue[queue_id] = kept
            else:
                by_queue.pop(queue_id, None)
            return removed

    def of_bucket(self, jurisdiction: str, bucket: str) -> dict[str, list[NotificationRule]]:
        with self.lock:
            return {queue: list(rules) for queue, rules in self.rules.get((jurisdiction, bucket), {}).items()}

    def forget_queue(self, queue_id: str) -> None:
        """A deleted queue takes its rules with it."""
        with self.lock:
            for by_queue in self.rules.values():
                by_queue.pop(queue_id, None)

    def targets(self, jurisdiction: str, bucket: str, key: str, action: str) -> list[str]:
        """The queues an object event reaches: each queue once, whatever number of its rules match."""
        with self.lock:
            by_queue = self.rules.get((jurisdiction, bucket), {})
            return [queue for queue, rules in by_queue.items() if any(r.matches(key, action) for r in rules)]

    @staticmethod
    def _rule(spec: Mapping[str, Any], created: str, index: int) -> NotificationRule:
        if not isinstance(spec, Mapping):
            raise RuleError(f"rules.{index} must be an object")
        unknown = sorted(set(spec) - {"actions", "prefix", "suffix", "description"})
        if unknown:
            raise RuleError(f"rules.{index}: unknown field(s) {', '.join(unknown)}")
        actions = spec.get("actions")
        if not isinstance(actions, list) or not actions or any(a not in ACTIONS for a in actions):
            raise RuleError(f"rules.{index}.actions must be a non-empty list of {', '.join(ACTIONS)}")
        for name in ("prefix", "suffix", "description"):
            if spec.get(name) is not None and not isinstance(spec[name], str):
                raise RuleError(f"rules.{index}.{name} must be a string")
        return NotificationRule(
            rule_id=uuid.uuid4().hex,
            actions=tuple(dict.fromkeys(actions)),
            prefix=spec.get("prefix") or "",
            suffix=spec.get("suffix") or "",
            description=spec.get("description"),
            created_at=created,
        )


def notification_body(
    account_id: str,
    bucket: str,
    key: str,
    action: str,
    *,
    size: int | None,
    etag: str | None,
    event_time: float,
    copy_source: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The message body an object event sends (the R2 docs' format)."""
    obj: dict[str, Any] = {"key": key}
    if size is not None:
        obj["size"] = size
    if etag is not None:
        obj["eTag"] = etag
    when = datetime.fromtimestamp(event_time, tz=timezone.utc)
    body: dict[str, Any] = {
        "account": account_id,
        "action": action,
        "bucket": bucket,
        "object": obj,
        "eventTime": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    if copy_source is not None:
        body["copySource"] = {"bucket": copy_source[0], "object": copy_source[1]}
    return body
