"""
A watcher's message filter: which messages of a shared queue one asset watcher wants.

Written as a dict, so that it serializes with the trigger::

    {"field": "kind", "equals": "refund"}              # body["kind"] == "refund"
    {"field": "order.country", "in": ["DE", "FR"]}     # body["order"]["country"] in (...)
    {"field": "priority", "exists": True}              # the body has that field

``field`` is a dotted path into a JSON body (an object); a message whose body is not a JSON object,
or lacks the field, does not match ``equals`` / ``in`` and matches ``exists: False``. A dotted import
path to a function of the message (a dict as in the event payload) is the other form; the trigger
resolves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import CloudflareQueuesValidationError

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
