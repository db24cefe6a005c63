"""
Events Cloudflare writes to queues, as flows (see :mod:`.flows`):

* R2 event-notification rules: list a bucket's rules, add one rule for a queue, remove rules by id;
* event subscriptions: create, list, get, update (enable/disable, events), delete, by name or id.

Each acts only on what it is given: a named queue is confirmed before a change, rules are removed
only by the ids named (never the service's remove-all), adding never replaces a rule (whether the
service's PUT replaces or appends is not documented), and creating or deleting a subscription twice
changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import CloudflareQueuesConflictError, CloudflareQueuesValidationError
from .event_requests import (
    add_rules_request,
    bucket_rules_request,
    create_subscription_request,
    delete_subscription_request,
    list_subscriptions_request,
    remove_rules_request,
    update_subscription_request,
    validate_bucket,
    validate_events,
    validate_source,
)
from .events import expand_r2_actions
from .flows import Flow, FlowContext, call, required, resolve_named_queue
from .models import EventSubscription, R2BucketRules, R2NotificationRule


def list_r2_rules(ctx: FlowContext, *, bucket: str, jurisdiction: str | None) -> Flow[R2BucketRules]:
    """Every notification rule of ``bucket``, by queue."""
    envelope = yield from call(ctx, bucket_rules_request(ctx.account_id, bucket, jurisdiction))
    rules: R2BucketRules = required(envelope, "r2_list_rules")
    return rules


def add_r2_rule(
    ctx: FlowContext,
    *,
    bucket: str,
    queue: str,
    actions: Sequence[str] | str,
    prefix: str | None,
    suffix: str | None,
    description: str | None,
    jurisdiction: str | None,
) -> Flow[R2NotificationRule]:
    """
    Send ``bucket``'s object events (``actions``, filtered by ``prefix``/``suffix``) to ``queue``; returns
    the rule. Idempotent: a rule with the same actions, prefix and suffix for the queue is returned as
    it is. When the queue has other rules on the bucket, it is refused (a PUT might replace them).
    """
    wanted = expand_r2_actions(actions)
    validate_bucket(bucket)
    for name, value in (("prefix", prefix), ("suffix", suffix), ("description", description)):
        if value is not None and not isinstance(value, str):
            raise CloudflareQueuesValidationError(f"{name} must be a string, got {value!r}")
    target = yield from resolve_named_queue(ctx, queue, "r2_put_rules")
    existing = (yield from list_r2_rules(ctx, bucket=bucket, jurisdiction=jurisdiction)).of_queue(target.queue_id)
    same = next((rule for rule in existing if rule.same_filter(wanted, prefix, suffix)), None)
    if same is not None:
        ctx.log.info("Queue %s already gets %s events of bucket %s (rule %s)", queue, wanted, bucket, same.rule_id)
        return same
    if existing:
        raise CloudflareQueuesConflictError(
            f"queue {queue!r} already has {len(existing)} rule(s) on bucket {bucket!r} "
            f"({', '.join(str(r.rule_id) for r in existing)}): adding one could replace them (the service "
            "does not document whether it replaces or appends). Remove them first, by id, or send this "
            "bucket's events to another queue"
        )
    rule = {"actions": wanted} | {k: v for k, v in (("prefix", prefix), ("suffix", suffix)) if v}
    if description:
        rule["description"] = description
    yield from call(ctx, add_rules_request(ctx.account_id, bucket, target.queue_id, [rule], jurisdiction))
    after = (yield from list_r2_rules(ctx, bucket=bucket, jurisdiction=jurisdiction)).of_queue(target.queue_id)
    created = next((r for r in after if r.same_filter(wanted, prefix, suffix)), None)
    if created is None:
        raise CloudflareQueuesConflictError(
            f"the rule for queue {queue!r} on bucket {bucket!r} is not listed after it was added"
        )
    ctx.log.info("Bucket %s sends %s events to queue %s (rule %s)", bucket, wanted, queue, created.rule_id)
    return created


def remove_r2_rules(
    ctx: FlowContext, *, bucket: str, queue: str, rule_ids: Sequence[str], jurisdiction: str | None
) -> Flow[list[str]]:
    """
    Remove the rules ``rule_ids`` of ``queue`` on ``bucket``; returns the ids removed. Ids that are not the
    queue's rules are refused before anything is removed; ids already gone are skipped (idempotent).
    """
    if isinstance(rule_ids, str) or not rule_ids:
        raise CloudflareQueuesValidationError(f"name the rules to remove by a list of rule ids, got {rule_ids!r}")
    target = yield from resolve_named_queue(ctx, queue, "r2_delete_rules")
    rules = yield from list_r2_rules(ctx, bucket=bucket, jurisdiction=jurisdiction)
    mine = {r.rule_id for r in rules.of_queue(target.queue_id)}
    others = {r.rule_id for q in rules.queues if q.queue_id != target.queue_id for r in q.rules}
    foreign = [r for r in rule_ids if r in others]
    if foreign:
        raise CloudflareQueuesValidationError(
            f"rule(s) {', '.join(foreign)} of bucket {bucket!r} send to another queue, not {queue!r}: nothing removed"
        )
    present = [r for r in rule_ids if r in mine]
    if present:
        yield from call(ctx, remove_rules_request(ctx.account_id, bucket, target.queue_id, present, jurisdiction))
    return present


# -- event subscriptions ----------------------------------------------------------------------------


def list_subscriptions(ctx: FlowContext) -> Flow[list[EventSubscription]]:
    """Every event subscription of the account (all pages)."""
    found: list[EventSubscription] = []
    for page in range(1, 101):
        envelope = yield from call(ctx, list_subscriptions_request(ctx.account_id, page))
        batch: list[EventSubscription] = required(envelope, "list_subscriptions")
        found.extend(batch)
        if len(batch) < 100:
            return found
    return found


def find_subscription(ctx: FlowContext, *, ref: str) -> Flow[EventSubscription | None]:
    """The subscription named ``ref`` (its id or its name), or ``None``; a name given to two is an error."""
    if not isinstance(ref, str) or not ref.strip():
        raise CloudflareQueuesValidationError(f"name the event subscription (its name or id), got {ref!r}")
    subscriptions = yield from list_subscriptions(ctx)
    by_id = [s for s in subscriptions if s.id == ref]
    if by_id:
        return by_id[0]
    by_name = [s for s in subscriptions if s.name == ref]
    if len(by_name) > 1:
        raise CloudflareQueuesConflictError(
            f"{len(by_name)} event subscriptions are named {ref!r} ({', '.join(s.id for s in by_name)}): name one by id"
        )
    return by_name[0] if by_name else None


def create_subscription(
    ctx: FlowContext, *, name: str, queue: str, source: dict[str, object], events: object, enabled: bool
) -> Flow[EventSubscription]:
    """
    Send ``source``'s ``events`` to ``queue``. Idempotent by name: a subscription with this name and
    these settings is returned as it is; one with this name and other settings is refused (update it).
    """
    wanted_source, wanted_events = validate_source(source), validate_events(events)
    if not isinstance(name, str) or not name.strip():
        raise CloudflareQueuesValidationError(f"name the event subscription, got {name!r}")
    target = yield from resolve_named_queue(ctx, queue, "create_subscription")
    existing = yield from find_subscription(ctx, ref=name)
    destination = {"type": "queues.queue", "queue_id": target.queue_id}
    if existing is not None:
        same = (existing.source, sorted(existing.events), existing.destination.get("queue_id"), existing.enabled) == (
            wanted_source,
            sorted(wanted_events),
            target.queue_id,
            enabled,
        )
        if same:
            return existing
        raise CloudflareQueuesConflictError(
            f"event subscription {name!r} ({existing.id}) exists with other settings: update it, or delete it first"
        )
    body = {
        "name": name,
        "enabled": enabled,
        "source": wanted_source,
        "events": wanted_events,
        "destination": destination,
    }
    envelope = yield from call(ctx, create_subscription_request(ctx.account_id, body))
    created: EventSubscription = required(envelope, "create_subscription")
    ctx.log.info("Event subscription %s (%s) sends %s to queue %s", name, created.id, wanted_events, queue)
    return created


def update_subscription(
    ctx: FlowContext, *, ref: str, enabled: bool | None, events: object, name: str | None
) -> Flow[EventSubscription]:
    """Change the subscription named ``ref``: enable or disable it, its events, its name."""
    current = yield from find_subscription(ctx, ref=ref)
    if current is None:
        raise CloudflareQueuesValidationError(f"no event subscription is named {ref!r}: nothing was changed")
    body: dict[str, object] = {}
    if enabled is not None:
        body["enabled"] = bool(enabled)
    if events is not None:
        body["events"] = validate_events(events)
    if name is not None:
        body["name"] = name
    if not body:
        return current
    envelope = yield from call(ctx, update_subscription_request(ctx.account_id, current.id, body))
    updated: EventSubscription = required(envelope, "update_subscription")
    return updated


def delete_subscription(ctx: FlowContext, *, ref: str) -> Flow[str | None]:
    """Delete the subscription named ``ref`` (name or id); its id, or ``None`` when there is none (idempotent)."""
    current = yield from find_subscription(ctx, ref=ref)
    if current is None:
        return None
    yield from call(ctx, delete_subscription_request(ctx.account_id, current.id))
    ctx.log.info("Deleted event subscription %s (%s)", current.name, current.id)
    return current.id
