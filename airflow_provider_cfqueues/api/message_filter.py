"""
A watcher's message filter: which messages of a shared queue one asset watcher wants.

Written as a dict, so that it serializes with the trigger::

    {"field": "kind", "equals": "refund"}              # body["kind"] == "refund"
    {"field": "order.country", "in": ["DE", "FR"]}     # body["order"]["country"] in (...)
    {"field": "priority", "exists": True}              # the body has that field

``field`` is a dotted path into a JSON body (an object); a message whose body is not a JSON object,
or lacks the field, does not match ``equals`` / ``in`` and matches ``exists: False``.

Shorthands for the events Cloudflare writes to queues (:mod:`.events`)::

    {"r2": {"bucket": "uploads", "prefix": "in/", "suffix": ".csv", "actions": ["object-create"]}}
    {"event_type": "cf.workflows.workflow.instance.*"}          # or a list of types / patterns

(every R2 key optional; ``actions`` takes R2 actions, ``PutObject``..., or the rule event types
``object-create`` / ``object-delete``). A dotted import path to a function of the message (a dict
as in the event payload) is another form, and a list of any of these means all of them (AND).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .callables import resolve_callable
from .errors import CloudflareQueuesValidationError
from .events import R2ObjectEvent, SubscriptionEvent, expand_r2_actions, read_event

#: one message (a dict as in the event payload, with its decoded ``body``) -> wanted or not
MessageTest = Callable[[dict[str, Any]], bool]

#: the tests a field filter can make, one per filter
TESTS = ("equals", "in", "exists")
_ABSENT = object()


@dataclass(frozen=True)
class FieldFilter:
    """
    A test on one field of a message's JSON body.

    :param path: the field's dotted path, split.
    :param test: ``equals``, ``in`` or ``exists``.
    :param value: what the field must equal, the values it may take, or whether it must exist.
    """

    path: tuple[str, ...]
    test: str
    value: Any

    def matches(self, message: dict[str, Any]) -> bool:
        """Whether the message (``{"body": ..., ...}``) passes."""
        found = self._lookup(message.get("body"))
        if self.test == "exists":
            return (found is not _ABSENT) is self.value
        if found is _ABSENT:
            return False
        if self.test == "in":
            return any(found == candidate for candidate in self.value)
        return bool(found == self.value)

    def _lookup(self, body: object) -> object:
        for key in self.path:
            if not isinstance(body, dict) or key not in body:
                return _ABSENT
            body = body[key]
        return body


def parse_field_filter(spec: object, name: str = "message_filter") -> FieldFilter:
    """Read ``{"field": ..., "<test>": ...}``, refusing anything else with the forms it takes."""
    forms = (
        'write {"field": "kind", "equals": "refund"}, {"field": "kind", "in": [...]} '
        'or {"field": "kind", "exists": True}'
    )
    if not isinstance(spec, dict):
        raise CloudflareQueuesValidationError(f"{name} must be a dict or a dotted import path; {forms}")
    path = spec.get("field")
    if not isinstance(path, str) or not path or any(not part for part in path.split(".")):
        raise CloudflareQueuesValidationError(f"{name} needs a 'field' (a dotted path into the body); {forms}")
    tests = [test for test in TESTS if test in spec]
    unknown = sorted(set(spec) - {"field", *TESTS})
    if len(tests) != 1 or unknown:
        extra = f" (unknown: {', '.join(unknown)})" if unknown else ""
        raise CloudflareQueuesValidationError(f"{name} takes one of {', '.join(TESTS)}{extra}; {forms}")
    test = tests[0]
    value = spec[test]
    if test == "in":
        if not isinstance(value, (list, tuple)) or not value:
            raise CloudflareQueuesValidationError(f"{name}: 'in' takes a non-empty list of values")
        value = tuple(value)
    if test == "exists" and not isinstance(value, bool):
        raise CloudflareQueuesValidationError(f"{name}: 'exists' takes True or False")
    return FieldFilter(tuple(path.split(".")), test, value)


@dataclass(frozen=True)
class R2Filter:
    """
    R2 event notifications of one bucket, key prefix and suffix, and actions (each optional).

    :param bucket: the bucket.
    :param prefix: the object key starts with it.
    :param suffix: the object key ends with it.
    :param actions: the R2 actions wanted (``object-create`` / ``object-delete`` expanded).
    """

    bucket: str | None = None
    prefix: str = ""
    suffix: str = ""
    actions: frozenset[str] | None = None

    def matches(self, message: dict[str, Any]) -> bool:
        event = read_event(message.get("body")).event
        return (
            isinstance(event, R2ObjectEvent)
            and (self.bucket is None or event.bucket == self.bucket)
            and event.key.startswith(self.prefix)
            and event.key.endswith(self.suffix)
            and (self.actions is None or event.action in self.actions)
        )


@dataclass(frozen=True)
class EventTypeFilter:
    """
    Event-subscription events of the given types: exact, or patterns with ``*``.

    :param patterns: the types or patterns; one is enough.
    """

    patterns: tuple[str, ...]

    def matches(self, message: dict[str, Any]) -> bool:
        event = read_event(message.get("body")).event
        return isinstance(event, SubscriptionEvent) and any(event.matches(p) for p in self.patterns)


@dataclass(frozen=True)
class AllOf:
    """Every one of ``tests`` holds (a list given as ``message_filter``)."""

    tests: tuple[MessageTest, ...]

    def matches(self, message: dict[str, Any]) -> bool:
        return all(test(message) for test in self.tests)


def parse_message_filter(spec: object, name: str = "message_filter") -> MessageTest:
    """
    A watcher's filter as a function of the message: a field filter, an ``r2`` or ``event_type``
    shorthand, a dotted import path, or a list of them (all must hold).
    """
    if isinstance(spec, str):
        function = resolve_callable(spec, name)
        assert function is not None
        return function
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise CloudflareQueuesValidationError(f"{name}: an empty list wants nothing; give at least one filter")
        return AllOf(tuple(parse_message_filter(item, f"{name}[{i}]") for i, item in enumerate(spec))).matches
    if isinstance(spec, dict) and set(spec) == {"r2"}:
        return _r2_filter(spec["r2"], name).matches
    if isinstance(spec, dict) and set(spec) == {"event_type"}:
        return _event_type_filter(spec["event_type"], name).matches
    return parse_field_filter(spec, name).matches


def _r2_filter(spec: object, name: str) -> R2Filter:
    keys = ("bucket", "prefix", "suffix", "actions")
    if not isinstance(spec, dict) or set(spec) - set(keys):
        unknown = sorted(set(spec) - set(keys)) if isinstance(spec, dict) else []
        raise CloudflareQueuesValidationError(
            f"{name}: 'r2' takes a dict of {', '.join(keys)}" + (f" (unknown: {', '.join(unknown)})" if unknown else "")
        )
    for key in ("bucket", "prefix", "suffix"):
        if spec.get(key) is not None and (not isinstance(spec[key], str) or not spec[key]):
            raise CloudflareQueuesValidationError(f"{name}: r2 {key} must be a non-empty string, got {spec[key]!r}")
    actions = spec.get("actions")
    wanted: frozenset[str] | None = None
    if actions is not None:
        wanted = frozenset(expand_r2_actions(actions, f"{name}: r2 actions"))
    return R2Filter(spec.get("bucket"), spec.get("prefix") or "", spec.get("suffix") or "", wanted)


def _event_type_filter(spec: object, name: str) -> EventTypeFilter:
    patterns = [spec] if isinstance(spec, str) else spec
    if (
        not isinstance(patterns, (list, tuple))
        or not patterns
        or any(not isinstance(p, str) or not p.startswith("cf.") for p in patterns)
    ):
        raise CloudflareQueuesValidationError(
            f"{name}: event_type takes a type or pattern starting with 'cf.' "
            f"(e.g. 'cf.workflows.workflow.instance.*'), or a list of them; got {spec!r}"
        )
    return EventTypeFilter(tuple(patterns))
