"""
Fault injection for the emulator: reproducible from a seed, configurable per endpoint.

A :class:`FaultPlan` maps endpoint names (see :data:`ENDPOINTS`, or ``"*"`` for every endpoint) to a
:class:`FaultRule`. For each request the server asks the plan for a :class:`FaultDecision`:

* ``error``: answer 500 or 503 with a Cloudflare error envelope; nothing changes.
* ``throttle``: answer 429 with ``Retry-After``; nothing changes.
* ``html``: answer 502 with an HTML page, as a proxy in front of the API would; nothing changes.
* ``lost``: apply the change, then drop the connection before answering.
* ``truncated``: apply the change, then answer 200 with a cut-off JSON body.
* ``latency`` (always, when set): wait this many seconds (plus up to ``latency_jitter``) first.

Each endpoint draws from its own random stream seeded from ``(seed, endpoint)``, so one client's
sequence of requests meets the same faults on every run.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field, fields, replace

ENDPOINTS: tuple[str, ...] = (
    "list_queues",
    "create_queue",
    "get_queue",
    "update_queue",
    "replace_queue",
    "delete_queue",
    "list_consumers",
    "create_consumer",
    "get_consumer",
    "update_consumer",
    "delete_consumer",
    "purge",
    "purge_status",
    "metrics",
    "push",
    "push_batch",
    "pull",
    "ack",
    "peek",
    "purge_messages",
)

FAULT_KINDS: tuple[str, ...] = ("error", "throttle", "html", "lost", "truncated")


@dataclass(frozen=True)
class FaultRule:
    """
    Fault rates for one endpoint. Rates are probabilities in [0, 1] and must sum to at most 1.

    :param error: rate of 500/503 answers (no state change).
    :param throttle: rate of 429 answers with ``Retry-After`` (no state change).
    :param html: rate of 502 answers with an HTML body (no state change).
    :param lost: rate of lost answers: the change is applied, then the connection is dropped.
    :param truncated: rate of 200 answers whose JSON body is cut off (the change is applied).
    :param latency: seconds added to every request.
    :param latency_jitter: up to this many extra seconds, drawn uniformly.
    :param retry_after: the ``Retry-After`` value (whole seconds) sent with 429 answers.
    """

    error: float = 0.0
    throttle: float = 0.0
    html: float = 0.0
    lost: float = 0.0
    truncated: float = 0.0
    latency: float = 0.0
    latency_jitter: float = 0.0
    retry_after: int = 1

    def __post_init__(self) -> None:
        rates = [getattr(self, kind) for kind in FAULT_KINDS]
        if any(rate < 0 or rate > 1 for rate in rates) or sum(rates) > 1 + 1e-9:
            raise ValueError(f"fault rates must be in [0, 1] and sum to at most 1, got {rates}")
        if self.latency < 0 or self.latency_jitter < 0 or self.retry_after < 0:
            raise ValueError("latency, latency_jitter and retry_after must not be negative")


@dataclass(frozen=True)
class FaultDecision:
    """
    What the server does to one request.

    :param kind: ``None`` or one of :data:`FAULT_KINDS`.
    :param delay: seconds to wait first.
    :param status: the HTTP status of an error answer.
    :param retry_after: the ``Retry-After`` of a 429.
    """

    kind: str | None = None
    delay: float = 0.0
    status: int = 200
    retry_after: int = 0


NO_FAULT = FaultDecision()


@dataclass
class FaultPlan:
    """
    Per-endpoint fault rules, drawn from seeded random streams. Thread-safe; rules can change while
    the emulator runs (:meth:`set`, :meth:`clear`).

    :param rules: endpoint name (or ``"*"``) → rule. A rule for an endpoint replaces the ``"*"`` rule.
    :param seed: seed of the random streams.
    """

    rules: dict[str, FaultRule] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        for endpoint in self.rules:
            _check_endpoint(endpoint)
        self._lock = threading.Lock()
        self._streams: dict[str, random.Random] = {}
        self.injected: Counter[tuple[str, str]] = Counter()

    def set(self, endpoint: str = "*", rule: FaultRule | None = None, **rates: float) -> None:
        """Set the rule of ``endpoint`` (or ``"*"``), from a :class:`FaultRule` or keyword rates."""
        _check_endpoint(endpoint)
        with self._lock:
            self.rules[endpoint] = rule if rule is not None else FaultRule(**rates)  # type: ignore[arg-type]

    def clear(self) -> None:
        """Remove every rule: from now on no request meets a fault."""
        with self._lock:
            self.rules.clear()

    def rule_for(self, endpoint: str) -> FaultRule | None:
        return self.rules.get(endpoint) or self.rules.get("*")

    def decide(self, endpoint: str) -> FaultDecision:
        """Draw the fault, if any, for one request to ``endpoint``."""
        with self._lock:
            rule = self.rule_for(endpoint)
            if rule is None:
                return NO_FAULT
            stream = self._streams.get(endpoint)
            if stream is None:
                stream = self._streams[endpoint] = random.Random(f"{self.seed}:{endpoint}")
            delay = rule.latency + (stream.uniform(0, rule.latency_jitter) if rule.latency_jitter else 0.0)
            draw = stream.random()
            kind = None
            threshold = 0.0
            for candidate in FAULT_KINDS:
                threshold += getattr(rule, candidate)
                if draw < threshold:
                    kind = candidate
                    break
            status = {"error": 500, "throttle": 429, "html": 502}.get(kind or "", 200)
            if kind == "error" and stream.random() < 0.5:
                status = 503
            if kind is not None:
                self.injected[(endpoint, kind)] += 1
            return FaultDecision(kind=kind, delay=delay, status=status, retry_after=rule.retry_after)


def parse_fault_spec(spec: str) -> tuple[str, FaultRule]:
    """
    Parse a CLI fault spec ``ENDPOINT:KEY=VALUE[,KEY=VALUE...]``, e.g. ``push:error=0.1,latency=0.05``
    or ``*:throttle=0.2,retry_after=1``. Keys are the fields of :class:`FaultRule`.
    """
    endpoint, sep, assignments = spec.partition(":")
    if not sep or not assignments:
        raise ValueError(f"fault spec {spec!r} is not ENDPOINT:KEY=VALUE[,KEY=VALUE...]")
    _check_endpoint(endpoint)
    names = {f.name: f.type for f in fields(FaultRule)}
    rule = FaultRule()
    for assignment in assignments.split(","):
        key, eq, value = assignment.partition("=")
        key = key.strip()
        if not eq or key not in names:
            raise ValueError(f"unknown fault key {key!r} in {spec!r}; known keys: {', '.join(names)}")
        number: float = int(value) if key == "retry_after" else float(value)
        rule = replace(rule, **{key: number})  # type: ignore[arg-type]
    return endpoint, rule


def _check_endpoint(endpoint: str) -> None:
    if endpoint != "*" and endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; known endpoints: *, {', '.join(ENDPOINTS)}")
