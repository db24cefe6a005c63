"""
The emulator's HTTP semantics: routing under ``/client/v4``, Bearer authentication, request-body
validation with the service's error codes, Cloudflare envelopes, and fault injection. Transport-free:
:class:`EmulatorApp.handle` takes a parsed request and returns a :class:`Reply`; :mod:`.server` moves
the bytes.
"""

from __future__ import annotations

import base64
import hmac
import json
import math
import secrets
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs

from .faults import FaultDecision, FaultPlan
from .r2 import JURISDICTIONS as R2_JURISDICTIONS
from .r2 import NotificationRule, R2Notifications, RuleError
from .ratelimit import DailyOperations, QueueThroughput, TokenBudget
from .state import (
    DEFAULT_PULL_BATCH_SIZE,
    MAX_BATCH_BYTES,
    MAX_BATCH_MESSAGES,
    MAX_BODY_BYTES,
    MAX_DELAY_SECONDS,
    MAX_PULL_BATCH_SIZE,
    MAX_VISIBILITY_TIMEOUT_MS,
    ApiError,
    EmulatorState,
    PushItem,
)
from .subscriptions import SubscriptionError, Subscriptions

API_PREFIX = "/client/v4/"
#: the most request-body bytes an endpoint takes, read before parsing (the largest legal request of
#: that endpoint, with room for JSON escaping); every other endpoint takes :data:`SMALL_BODY_BYTES`
BODY_LIMITS = {
    "push": 1 << 20,
    "push_batch": 1 << 20,
    "ack": 256 << 10,
    "purge": 256 << 10,
    "purge_messages": 256 << 10,
}
SMALL_BODY_BYTES = 64 << 10
#: requests parsed and answered at once (the rest wait their turn): bounds the memory of parsing
MAX_HANDLED_AT_ONCE = 8

_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}

_PROXY_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass
class Reply:
    """An answer to send: status, headers and body, or ``drop`` to close the connection unanswered."""

    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"
    drop: bool = False

    def encode(self, keep_alive: bool, *, head: bool = False) -> bytes:
        """Status line, headers and body as one buffer, so that the server answers with one write; an
        answer to ``HEAD`` has the headers of the full answer and no body."""
        lines = [
            f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Unknown')}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
            f"cf-ray: {secrets.token_hex(8)}-EMU",
        ]
        lines.extend(f"{name}: {value}" for name, value in self.headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head else self.body)


class _OutOfOperations(Exception):
    """A request would pass the Free plan's operations of the day: refused whole, nothing applied."""


@dataclass
class Request:
    """
    What a handler gets: path parameters, query parameters and the raw body; on the Free plan, the
    operations the account has left today, which the handler spends (:meth:`charge`) before it acts.
    """

    params: dict[str, str]
    query: dict[str, list[str]]
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    operations_left: int | None = None
    spent: int = 0

    def charge(self, operations: int) -> None:
        """Spend ``operations``, or refuse the request whole when fewer are left (never in part)."""
        if self.operations_left is None:
            return
        if operations > self.operations_left - self.spent:
            raise _OutOfOperations
        self.spent += operations

    def cap(self, size: int | None, default: Callable[[], int]) -> int | None:
        """A pull's or peek's batch size, at most the operations left (each message read is one);
        ``default()`` (the size when none was asked) is called only on the Free plan."""
        if self.operations_left is None:
            return size
        left = self.operations_left - self.spent
        if left <= 0:
            raise _OutOfOperations
        return min(size if size is not None else default(), left)


def operations_of(size: int) -> int:
    """Operations one message costs to write, read or delete: one per 64 KB (Cloudflare's pricing)."""
    return max(1, math.ceil(size / OPERATION_BYTES))


Observer = Callable[[str, str, Mapping[str, str], bytes, Reply], None]
Handler = Callable[["EmulatorApp", Request], tuple[Any, dict[str, Any] | None, list[str]]]


_compact_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _dumps(value: Any) -> bytes:
    return _compact_json(value).encode()


def envelope(result: Any, result_info: dict[str, Any] | None = None) -> bytes:
    payload: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        payload["result_info"] = result_info
    return _dumps(payload)


def error_reply(status: int, code: int, message: str, headers: list[tuple[str, str]] | None = None) -> Reply:
    payload = {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}
    return Reply(status, _dumps(payload), headers or [])


class EmulatorApp:
    """
    Routes and answers Cloudflare Queues API requests against an :class:`EmulatorState`.

    :param state: the queues and messages.
    :param token: the API token that requests must carry as ``Authorization: Bearer <token>``.
    :param faults: the fault plan applied to every authenticated request.
    :param budget: the token's API budget (``None``: unlimited).
    :param throughput: messages per second per queue (``None``: unlimited).
    :param read_only_token: a second token, with the Queues Read permission only: it may read
        queues, consumers, metrics and purge status, and gets 403 on anything that changes state.
    :param operations: the Free plan's operations a day (``None``: unlimited, as on a paid plan).
    """

    def __init__(
        self,
        state: EmulatorState,
        token: str,
        faults: FaultPlan | None = None,
        *,
        budget: TokenBudget | None = None,
        throughput: QueueThroughput | None = None,
        read_only_token: str | None = None,
        operations: DailyOperations | None = None,
    ) -> None:
        for name, value in (("token", token), ("read_only_token", read_only_token)):
            if value is not None and not value.strip():
                raise ValueError(f"{name} must not be empty: an empty token would let any request in")
        self.state = state
        #: R2 event-notification rules, per account (:mod:`.r2`)
        self.r2: dict[str, R2Notifications] = defaultdict(R2Notifications)
        #: event subscriptions, per account (:mod:`.subscriptions`)
        self.subscriptions: dict[str, Subscriptions] = defaultdict(Subscriptions)
        self.token = token
        self.read_only_token = read_only_token
        self.faults = faults or FaultPlan()
        self.budget = budget
        self.throughput = throughput
        self.operations = operations
        self.requests: Counter[str] = Counter()
        #: the same, per (endpoint, queue id) of the endpoints on one queue (pulls of one queue, say)
        self.queue_requests: Counter[tuple[str, str]] = Counter()
        self.lost_answers: Counter[str] = Counter()
        self.observers: list[Observer] = []
        self._handling = threading.BoundedSemaphore(MAX_HANDLED_AT_ONCE)

    def body_limit(self, method: str, target: str) -> int:
        """The most body bytes the endpoint of ``method`` and ``target`` takes (:data:`BODY_LIMITS`)."""
        try:
            endpoint = self._route(method, target.partition("?")[0])[0]
        except ApiError:
            return SMALL_BODY_BYTES
        return BODY_LIMITS.get(endpoint, SMALL_BODY_BYTES)

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Answer one request; then show the exchange to every observer (tests validate it there)."""
        reply = self._handle(method, target, headers, body)
        reply.headers.append(("Date", formatdate(self.state.clock.now(), usegmt=True)))  # by the emulator's clock
        for observer in self.observers:
            observer(method, target, headers, body, reply)
        return reply

    def _handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Reply:
        path, _, query_string = target.partition("?")
        try:
            endpoint, handler, params = self._route(method, path)
        except ApiError as err:
            return error_reply(err.status, err.code, err.message)
        authorization = headers.get("authorization", "")
        if not authorization:
            return error_reply(400, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
        scheme, _, token = authorization.partition(" ")
        presented = token.strip().encode()
        if scheme.lower() != "bearer":
            return error_reply(403, 10000, "Authentication error")
        if not hmac.compare_digest(presented, self.token.encode()):
            reader = self.read_only_token is not None and hmac.compare_digest(presented, self.read_only_token.encode())
            if not reader or endpoint not in READ_ENDPOINTS:
                return error_reply(403, 10000, "Authentication error")
        self.requests[endpoint] += 1
        if "queue_id" in params:
            self.queue_requests[endpoint, params["queue_id"]] += 1
        limits: list[tuple[str, str]] = []
        if self.budget is not None:
            verdict = self.budget.check(params["account_id"], endpoint, self.state.clock.now())
            limits = verdict.headers
            if verdict.retry_after is not None:
                return error_reply(429, 971, "Please wait and consider throttling your request speed", limits)
        decision = self.faults.decide(endpoint)
        if decision.delay:
            time.sleep(decision.delay)
        if decision.kind in ("error", "throttle", "html"):
            reply = self._fault_reply(decision)
            reply.headers.extend(limits)
            return reply
        request = Request(params, parse_qs(query_string), body, {k.lower(): v for k, v in headers.items()})
        counts_operations = self.operations is not None and endpoint in OPERATION_ENDPOINTS
        if counts_operations:
            request.operations_left = self.operations.left(params["account_id"], self.state.clock.now())  # type: ignore[union-attr]
        try:
            with self._handling:  # after any injected latency: a slow answer does not hold a slot
                result, result_info, message_ids = handler(self, request)
        except ApiError as err:
            return error_reply(err.status, err.code, err.message, [*limits, *err.headers])
        except _OutOfOperations:
            wait = self.operations.seconds_to_next_day(self.state.clock.now())  # type: ignore[union-attr]
            return error_reply(
                429,
                10253,
                "QueueOperationsLimitExceeded: this request needs more operations than this account has left of "
                f"its {self.operations.limit:,} operations of today (Free plan); more from 00:00 UTC",  # type: ignore[union-attr]
                [*limits, ("Retry-After", str(wait))],
            )
        if counts_operations and request.spent:
            self.operations.spend(params["account_id"], request.spent, self.state.clock.now())  # type: ignore[union-attr]
        if decision.kind == "lost":
            self.lost_answers[endpoint] += 1
            self.state.note("lost_answer", params.get("queue_id", ""), endpoint, message_ids)
            return Reply(200, b"", drop=True)
        encoded = envelope(result, result_info)
        if decision.kind == "truncated":
            self.state.note("truncated_answer", params.get("queue_id", ""), endpoint, message_ids)
            return Reply(200, encoded[: len(encoded) // 2], limits)
        return Reply(200, encoded, limits)

    def _fault_reply(self, decision: FaultDecision) -> Reply:
        if decision.kind == "throttle":
            return error_reply(
                429,
                10250,
                "QueueOverloaded: too many requests; please wait and consider throttling your request speed",
                [("Retry-After", str(decision.retry_after))],
            )
        if decision.kind == "html":
            return Reply(502, _PROXY_PAGE, content_type="text/html")
        return error_reply(decision.status, 15000, "UnknownInternalError: internal error, try again")

    def _route(self, method: str, path: str) -> tuple[str, Handler, dict[str, str]]:
        if not path.startswith(API_PREFIX):
            raise ApiError(404, 7003, "No route for the URI")
        parts = path[len(API_PREFIX) :].split("/")
        if len(parts) == 4 and parts[0] == "accounts" and parts[2:] == ["emulator", "stats"]:
            if method != "GET":
                raise ApiError(405, 7001, f"Method {method} not allowed for this route")
            return "emulator_stats", EmulatorApp.emulator_stats, {"account_id": parts[1]}
        if len(parts) >= 6 and parts[0] == "accounts" and parts[2:4] == ["event_notifications", "r2"]:
            return self._r2_route(method, parts)
        if len(parts) in (4, 5) and parts[0] == "accounts" and parts[2:4] == ["event_subscriptions", "subscriptions"]:
            return self._subscription_route(method, parts)
        if len(parts) < 3 or parts[0] != "accounts" or parts[2] != "queues":
            raise ApiError(404, 7003, "No route for the URI")
        params = {"account_id": parts[1]}
        shape = parts[3:]
        if shape:
            params["queue_id"], shape[0] = shape[0], "{q}"
        if len(shape) == 3 and shape[1] == "consumers":
            params["consumer_id"], shape[2] = shape[2], "{c}"
        methods = _ROUTES.get("/".join(shape))
        if methods is None:
            raise ApiError(404, 7003, "No route for the URI")
        entry = methods.get(method)
        if entry is None:
            raise ApiError(405, 7001, f"Method {method} not allowed for this route")
        return entry[0], entry[1], params

    def _r2_route(self, method: str, parts: list[str]) -> tuple[str, Handler, dict[str, str]]:
        """``/accounts/{a}/event_notifications/r2/{bucket}/configuration[/queues/{queue_id}]``."""
        params = {"account_id": parts[1], "bucket": parts[4]}
        rest = parts[5:]
        if rest == ["configuration"]:
            routes = {"GET": ("r2_list_rules", EmulatorApp.r2_list_rules)}
        elif len(rest) == 3 and rest[:2] == ["configuration", "queues"]:
            params["queue_id"] = rest[2]
            routes = {
                "GET": ("r2_get_rules", EmulatorApp.r2_get_rules),
                "PUT": ("r2_put_rules", EmulatorApp.r2_put_rules),
                "DELETE": ("r2_delete_rules", EmulatorApp.r2_delete_rules),
            }
        else:
            raise ApiError(404, 7003, "No route for the URI")
        if method not in routes:
            raise ApiError(405, 7001, f"Method {method} not allowed for this route")
        return routes[method][0], routes[method][1], params

    def _subscription_route(self, method: str, parts: list[str]) -> tuple[str, Handler, dict[str, str]]:
        """``/accounts/{a}/event_subscriptions/subscriptions[/{id}]``."""
        params = {"account_id": parts[1]}
        routes: dict[str, tuple[str, Handler]]
        if len(parts) == 4:
            routes = {
                "GET": ("list_subscriptions", EmulatorApp.list_subscriptions),
                "POST": ("create_subscription", EmulatorApp.create_subscription),
            }
        else:
            params["subscription_id"] = parts[4]
            routes = {
                "GET": ("get_subscription", EmulatorApp.get_subscription),
                "PATCH": ("update_subscription", EmulatorApp.update_subscription),
                "DELETE": ("delete_subscription", EmulatorApp.delete_subscription),
            }
        if method not in routes:
            raise ApiError(405, 7001, f"Method {method} not allowed for this route")
        return routes[method][0], routes[method][1], params

    # -- event subscriptions ---------------------------------------------------------------------

    def _queue_ids(self, account_id: str) -> set[str]:
        with self.state.lock:
            return set(self.state.accounts.get(account_id, {}))

    def create_subscription(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        account = req.params["account_id"]
        try:
            created = self.subscriptions[account].create(
                _json_object(req.body), self._queue_ids(account), self.state.clock.now()
            )
        except SubscriptionError as err:
            raise ApiError(400, 10040, f"InvalidSubscription: {err}") from None
        return created, None, []

    def list_subscriptions(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        listing = self.subscriptions[req.params["account_id"]].listing()
        return listing, {"page": 1, "per_page": len(listing), "count": len(listing), "total_count": len(listing)}, []

    def get_subscription(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        try:
            return self.subscriptions[req.params["account_id"]].get(req.params["subscription_id"]), None, []
        except KeyError:
            raise ApiError(404, 10041, "SubscriptionNotFound") from None

    def update_subscription(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        account = req.params["account_id"]
        try:
            updated = self.subscriptions[account].update(
                req.params["subscription_id"], _json_object(req.body), self._queue_ids(account), self.state.clock.now()
            )
        except KeyError:
            raise ApiError(404, 10041, "SubscriptionNotFound") from None
        except SubscriptionError as err:
            raise ApiError(400, 10040, f"InvalidSubscription: {err}") from None
        return updated, None, []

    def delete_subscription(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        try:
            return self.subscriptions[req.params["account_id"]].delete(req.params["subscription_id"]), None, []
        except KeyError:
            raise ApiError(404, 10041, "SubscriptionNotFound") from None

    # -- R2 event notifications ----------------------------------------------------------------

    def _r2_of(self, req: Request) -> tuple[R2Notifications, str]:
        jurisdiction = req.headers.get("cf-r2-jurisdiction", "default")
        if jurisdiction not in R2_JURISDICTIONS:
            raise ApiError(400, 10040, f"invalid cf-r2-jurisdiction {jurisdiction!r}")
        return self.r2[req.params["account_id"]], jurisdiction

    def _r2_queue(self, req: Request) -> dict[str, Any]:
        return self.state.get_queue(req.params["account_id"], req.params["queue_id"])

    def r2_put_rules(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        body = _json_object(req.body)
        rules = body.get("rules")
        if not isinstance(rules, list):
            raise ApiError(400, 10040, 'Required at "rules": a list of rules')
        self._r2_queue(req)
        notifications, jurisdiction = self._r2_of(req)
        try:
            notifications.add(jurisdiction, req.params["bucket"], req.params["queue_id"], rules, self.state.clock.now())
        except RuleError as err:
            raise ApiError(400, 10040, f"InvalidRule: {err}") from None
        return {}, None, []

    def r2_get_rules(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        queue = self._r2_queue(req)
        notifications, jurisdiction = self._r2_of(req)
        rules = notifications.of_bucket(jurisdiction, req.params["bucket"]).get(req.params["queue_id"], [])
        return _r2_queue_wire(queue, rules), None, []

    def r2_list_rules(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        notifications, jurisdiction = self._r2_of(req)
        queues = []
        for queue_id, rules in notifications.of_bucket(jurisdiction, req.params["bucket"]).items():
            queue = self.state.get_queue(req.params["account_id"], queue_id)
            queues.append(_r2_queue_wire(queue, rules))
        return {"bucketName": req.params["bucket"], "queues": queues}, None, []

    def r2_delete_rules(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        self._r2_queue(req)
        notifications, jurisdiction = self._r2_of(req)
        rule_ids = None
        if req.body.strip():
            body = _json_object(req.body)
            rule_ids = body.get("ruleIds")
            if not isinstance(rule_ids, list) or not all(isinstance(r, str) for r in rule_ids):
                raise ApiError(400, 10040, 'Expected a list of rule ids at "ruleIds"')
        notifications.remove(jurisdiction, req.params["bucket"], req.params["queue_id"], rule_ids)
        return {}, None, []

    # -- handlers ------------------------------------------------------------------------------

    def list_queues(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        page = _int_query(req.query, "page", 1)
        per_page = _int_query(req.query, "per_page", 20)
        result, info = self.state.list_queues(
            req.params["account_id"], page=page, per_page=per_page, names=req.query.get("name", [])
        )
        return result, info, []

    def create_queue(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        body = _json_object(req.body)
        if "queue_name" not in body:
            raise ApiError(400, 10207, 'Required at "queue_name"')
        settings = body.get("settings")
        if settings is not None and not isinstance(settings, dict):
            raise ApiError(400, 10207, f'JSONRequestBodyInvalid: Expected object at "settings", got {settings!r}')
        jurisdiction = body.get("jurisdiction")
        return self.state.create_queue(req.params["account_id"], body["queue_name"], settings, jurisdiction), None, []

    def get_queue(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        return self.state.get_queue(req.params["account_id"], req.params["queue_id"]), None, []

    def update_queue(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        body = _json_object(req.body)
        return self.state.update_queue(req.params["account_id"], req.params["queue_id"], body), None, []

    def replace_queue(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        body = _json_object(req.body)
        p = req.params
        return self.state.update_queue(p["account_id"], p["queue_id"], body, replace=True), None, []

    def delete_queue(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        self.state.delete_queue(req.params["account_id"], req.params["queue_id"])
        self.r2[req.params["account_id"]].forget_queue(req.params["queue_id"])  # its rules go with it
        return None, None, []

    def list_consumers(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        return self.state.list_consumers(req.params["account_id"], req.params["queue_id"]), None, []

    def create_consumer(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        body = _json_object(req.body)
        return self.state.create_consumer(req.params["account_id"], req.params["queue_id"], body), None, []

    def get_consumer(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        p = req.params
        return self.state.get_consumer(p["account_id"], p["queue_id"], p["consumer_id"]), None, []

    def update_consumer(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        p = req.params
        body = _json_object(req.body)
        return self.state.update_consumer(p["account_id"], p["queue_id"], p["consumer_id"], body), None, []

    def purge(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        body = _json_object(req.body) if req.body.strip() else {}
        return self.state.purge(req.params["account_id"], req.params["queue_id"], body), None, []

    def purge_status(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        return self.state.purge_status(req.params["account_id"], req.params["queue_id"]), None, []

    def delete_consumer(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        p = req.params
        self.state.delete_consumer(p["account_id"], p["queue_id"], p["consumer_id"])
        return None, None, []

    def emulator_stats(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        """The emulator's own counters (not a Cloudflare endpoint): read-only, behind the token check."""
        return self.state.stats(req.params["account_id"]), None, []

    def metrics(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        return self.state.metrics(req.params["account_id"], req.params["queue_id"]), None, []

    def _take_throughput(self, queue_id: str, messages: int) -> None:
        if self.throughput is not None and not self.throughput.take(
            queue_id, messages, self.state.clock.now(), partial=False
        ):
            raise _overloaded()

    def push(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        item = _push_item(_json_object(req.body), "")
        req.charge(operations_of(item.size))
        self._take_throughput(req.params["queue_id"], 1)
        metrics, ids = self.state.push(req.params["account_id"], req.params["queue_id"], [item])
        return {"metadata": {"metrics": metrics}}, None, ids

    def push_batch(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        body = _json_object(req.body)
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise ApiError(400, 10207, 'Required at "messages"' if messages is None else 'Expected array at "messages"')
        if len(messages) > MAX_BATCH_MESSAGES:
            raise ApiError(
                400,
                10206,
                f"BatchCountOutOfBounds: a batch holds at most {MAX_BATCH_MESSAGES} messages, got {len(messages)}",
            )
        if not messages:
            raise ApiError(400, 10207, 'Array must contain at least 1 element(s) at "messages"')
        if len(req.body) > MAX_BATCH_BYTES:
            raise ApiError(
                400, 10205, f"BatchSizeOutOfBounds: a batch is at most {MAX_BATCH_BYTES} bytes, got {len(req.body)}"
            )
        delay = body.get("delay_seconds")
        if delay is not None:
            _check_delay(delay, "delay_seconds", 10202, "BatchDelayInvalid")
        items = [_push_item(m, f"messages.{i}.") for i, m in enumerate(messages)]
        req.charge(sum(operations_of(item.size) for item in items))  # the whole batch, or nothing
        self._take_throughput(req.params["queue_id"], len(items))
        metrics, ids = self.state.push(req.params["account_id"], req.params["queue_id"], items, delay)
        return {"metadata": {"metrics": metrics}}, None, ids

    def pull(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        body = _json_object(req.body) if req.body.strip() else {}
        batch_size = body.get("batch_size")
        if batch_size is not None:
            _check_number(batch_size, "batch_size", 1, MAX_PULL_BATCH_SIZE, 10207, "JSONRequestBodyInvalid")
            if batch_size != int(batch_size):
                raise ApiError(400, 10207, "JSONRequestBodyInvalid: batch_size must be a whole number")
        timeout = body.get("visibility_timeout_ms")
        if timeout is not None:
            _check_number(
                timeout, "visibility_timeout_ms", 1, MAX_VISIBILITY_TIMEOUT_MS, 10207, "JSONRequestBodyInvalid"
            )
        size = req.cap(None if batch_size is None else int(batch_size), lambda: self._consumer_batch_size(req))
        granted = 0
        if self.throughput is not None:
            wanted = size or MAX_PULL_BATCH_SIZE
            granted = self.throughput.take(req.params["queue_id"], wanted, self.state.clock.now(), partial=True)
            if not granted:
                raise _overloaded()
            size = granted
        result = self.state.pull(req.params["account_id"], req.params["queue_id"], size, timeout)
        if self.throughput is not None:
            self.throughput.give_back(req.params["queue_id"], granted - len(result["messages"]))
        req.charge(len(result["messages"]))  # each message read (capped above: never past the day's)
        return result, None, [m["id"] for m in result["messages"]]

    def _consumer_batch_size(self, req: Request) -> int:
        consumer = self.state.find_queue(req.params["account_id"], req.params["queue_id"]).consumer
        default = DEFAULT_PULL_BATCH_SIZE
        return int(consumer.settings.get("batch_size", default)) if consumer is not None else default

    def peek(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        body = _json_object(req.body) if req.body.strip() else {}
        batch_size = body.get("batch_size")
        if batch_size is not None:
            _check_number(batch_size, "batch_size", 1, MAX_PULL_BATCH_SIZE, 10207, "JSONRequestBodyInvalid")
            batch_size = int(batch_size)
        # a peek reads the messages it shows (the docs are silent: counted as reads)
        batch_size = req.cap(batch_size, lambda: DEFAULT_PULL_BATCH_SIZE)
        result = self.state.peek(req.params["account_id"], req.params["queue_id"], batch_size)
        req.charge(len(result["messages"]))
        return result, None, [m["id"] for m in result["messages"]]

    def purge_messages(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        body = _json_object(req.body)
        refs = []
        for i, item in enumerate(_array(body, "refs")):
            ref = item.get("ref") if isinstance(item, dict) else None
            if not isinstance(ref, str) or not ref:
                raise ApiError(400, 10207, f'JSONRequestBodyInvalid: Required string at "refs.{i}.ref"')
            refs.append(ref)
        if not refs:
            raise ApiError(400, 10207, 'JSONRequestBodyInvalid: Array must contain at least 1 element(s) at "refs"')
        req.charge(len(refs))  # each ref a delete (the docs are silent: counted, even an unknown one)
        return self.state.purge_messages(req.params["account_id"], req.params["queue_id"], refs), None, []

    def ack(self, req: Request) -> tuple[Any, dict[str, Any] | None, list[str]]:
        body = _json_object(req.body)
        acks = [_lease_id(item, f"acks.{i}") for i, item in enumerate(_array(body, "acks"))]
        retries: list[tuple[str, float | None]] = []
        for i, item in enumerate(_array(body, "retries")):
            lease_id = _lease_id(item, f"retries.{i}")
            delay = item.get("delay_seconds")
            if delay is not None:
                _check_delay(delay, f"retries.{i}.delay_seconds", 10203, "MessageMetadataInvalid")
            retries.append((lease_id, delay))
        req.charge(len(acks))  # each ack a delete; a retry is counted as the read of its next delivery
        return self.state.ack(req.params["account_id"], req.params["queue_id"], acks, retries), None, []


#: what the Free plan counts as operations: messages written, read and deleted (peeks read, purges delete)
OPERATION_ENDPOINTS = frozenset({"push", "push_batch", "pull", "ack", "peek", "purge_messages"})
#: the data one operation covers (Cloudflare's pricing: every 64 KB written, read or deleted)
OPERATION_BYTES = 64 * 1024
#: what a token with the Queues Read permission only may call
READ_ENDPOINTS = frozenset(
    {"list_queues", "get_queue", "metrics", "list_consumers", "get_consumer", "purge_status", "peek", "emulator_stats"}
)

_ROUTES: dict[str, dict[str, tuple[str, Handler]]] = {
    "": {"GET": ("list_queues", EmulatorApp.list_queues), "POST": ("create_queue", EmulatorApp.create_queue)},
    "{q}": {
        "GET": ("get_queue", EmulatorApp.get_queue),
        "PUT": ("replace_queue", EmulatorApp.replace_queue),
        "PATCH": ("update_queue", EmulatorApp.update_queue),
        "DELETE": ("delete_queue", EmulatorApp.delete_queue),
    },
    "{q}/metrics": {"GET": ("metrics", EmulatorApp.metrics)},
    "{q}/consumers": {
        "GET": ("list_consumers", EmulatorApp.list_consumers),
        "POST": ("create_consumer", EmulatorApp.create_consumer),
    },
    "{q}/consumers/{c}": {
        "GET": ("get_consumer", EmulatorApp.get_consumer),
        "PUT": ("update_consumer", EmulatorApp.update_consumer),
        "DELETE": ("delete_consumer", EmulatorApp.delete_consumer),
    },
    "{q}/purge": {"POST": ("purge", EmulatorApp.purge), "GET": ("purge_status", EmulatorApp.purge_status)},
    "{q}/messages": {"POST": ("push", EmulatorApp.push)},
    "{q}/messages/batch": {"POST": ("push_batch", EmulatorApp.push_batch)},
    "{q}/messages/pull": {"POST": ("pull", EmulatorApp.pull)},
    "{q}/messages/ack": {"POST": ("ack", EmulatorApp.ack)},
    "{q}/messages/peek": {"POST": ("peek", EmulatorApp.peek)},
    "{q}/messages/purge": {"POST": ("purge_messages", EmulatorApp.purge_messages)},
}


def _r2_queue_wire(queue: dict[str, Any], rules: list[NotificationRule]) -> dict[str, Any]:
    return {"queueId": queue["queue_id"], "queueName": queue["queue_name"], "rules": [r.to_wire() for r in rules]}


def _overloaded() -> ApiError:
    return ApiError(
        429,
        10250,
        "QueueOverloaded: too many messages per second for this queue; please wait and consider throttling",
        headers=[("Retry-After", "1")],
    )


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as err:
        raise ApiError(400, 10208, f"JSONRequestBodyMalformed: the request body is not valid JSON ({err})") from None
    except RecursionError:
        raise ApiError(400, 10208, "JSONRequestBodyMalformed: the request body is nested too deeply") from None
    if not isinstance(value, dict):
        raise ApiError(400, 10207, f"JSONRequestBodyInvalid: Expected object, received {_type_name(value)}")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {str: "string", int: "number", float: "number", list: "array", dict: "object"}.get(type(value), "unknown")


def _check_number(value: Any, name: str, low: float, high: float, code: int, label: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ApiError(400, code, f"{label}: {name} must be a number between {low:g} and {high:g}, got {value!r}")


def _check_delay(value: Any, name: str, code: int, label: str) -> None:
    """Delays are whole seconds (shared/reference §11): a fraction gets the service's 400."""
    _check_number(value, name, 0, MAX_DELAY_SECONDS, code, label)
    if value != int(value):
        raise ApiError(400, code, f"{label}: {name} must be a whole number of seconds, got {value!r}")


def _push_item(message: Any, where: str) -> PushItem:
    if not isinstance(message, dict):
        raise ApiError(
            400,
            10207,
            f'JSONRequestBodyInvalid: Expected object, received {_type_name(message)} at "{where.rstrip(".")}"',
        )
    if "body" not in message:
        raise ApiError(400, 10207, f'JSONRequestBodyInvalid: Required at "{where}body"')
    content_type = message.get("content_type", "json")
    body = message["body"]
    try:
        if content_type == "text":
            if not isinstance(body, str):
                raise ApiError(
                    400, 10207, f'JSONRequestBodyInvalid: Expected string, received {_type_name(body)} at "{where}body"'
                )
            raw = body.encode()
            encoded = body
        elif content_type == "json":
            if isinstance(body, str):
                raise ApiError(400, 10207, f'JSONRequestBodyInvalid: Expected object, received string at "{where}body"')
            raw = _compact_json(body).encode()
            encoded = base64.b64encode(raw).decode()
        else:
            raise ApiError(
                400,
                10203,
                f'MessageMetadataInvalid: content_type must be "text" or "json" over HTTP, got {content_type!r}',
            )
    except UnicodeEncodeError:
        raise ApiError(
            400, 10207, f'JSONRequestBodyInvalid: invalid Unicode (a lone surrogate) in "{where}body"'
        ) from None
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(
            400,
            10204,
            f"MessageSizeOutOfBounds: a message body is at most {MAX_BODY_BYTES} bytes "
            f"(128 KB including metadata), got {len(raw)}",
        )
    delay = message.get("delay_seconds")
    if delay is not None:
        _check_delay(delay, f"{where}delay_seconds", 10203, "MessageMetadataInvalid")
    return PushItem(body=encoded, content_type=content_type, size=len(raw), delay_seconds=delay)


def _array(body: dict[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError(400, 10207, f'JSONRequestBodyInvalid: Expected array, received {_type_name(value)} at "{name}"')
    return value


def _lease_id(item: Any, where: str) -> str:
    lease_id = item.get("lease_id") if isinstance(item, dict) else None
    if not isinstance(lease_id, str) or not lease_id:
        raise ApiError(400, 10207, f'JSONRequestBodyInvalid: Required string at "{where}.lease_id"')
    return lease_id


def _int_query(query: dict[str, list[str]], name: str, default: int) -> int:
    values = query.get(name)
    if not values:
        return default
    try:
        return int(values[0])
    except ValueError:
        raise ApiError(400, 10207, f"query parameter {name} must be a whole number") from None
