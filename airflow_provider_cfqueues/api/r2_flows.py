"""
R2 event-notification rules as flows (see :mod:`.flows`): list a bucket's rules, add one rule for a
queue, remove rules by id. Each acts only on what it is given: a named queue is confirmed before a
change, rules are removed only by the ids named (never the service's remove-all), and adding never
replaces a rule (whether the service's PUT replaces or appends is not documented).
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import CloudflareQueuesConflictError, CloudflareQueuesValidationError
from .flows import Flow, FlowContext, call, required, resolve_named_queue
from .models import R2BucketRules, R2NotificationRule
from .r2_requests import (
    add_rules_request,
    bucket_rules_request,
    remove_rules_request,
    validate_actions,
    validate_bucket,
)


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
    wanted = validate_actions(actions)
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
