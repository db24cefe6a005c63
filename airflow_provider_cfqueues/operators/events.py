"""
Events Cloudflare writes to queues, wired from a DAG: an R2 bucket's notification rules (send its
object events to a queue, or stop) and event subscriptions (send a source's events to a queue,
enable or disable them, delete them). Each acts only on what it is given (never the connection's
default queue) and is idempotent, so task retries are safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..api.event_requests import (
    validate_bucket,
    validate_events,
    validate_jurisdiction,
    validate_source,
)
from ..api.events import expand_r2_actions
from .base import QUEUE_TEMPLATE_FIELDS, CloudflareQueuesBaseOperator, closes_hook

if TYPE_CHECKING:
    from airflow.sdk import Context


class _R2RuleOperator(CloudflareQueuesBaseOperator):
    _needs_named_queue = True
    ui_color = "#fbad41"

    def __init__(self, *, bucket: str, jurisdiction: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bucket = bucket
        self.jurisdiction = validate_jurisdiction(jurisdiction)
        if "{{" not in bucket:
            validate_bucket(bucket)  # fail when the DAG is parsed


class CloudflareQueuesAddR2NotificationRuleOperator(_R2RuleOperator):
    """
    Send ``bucket``'s object events to the Cloudflare queue ``cloudflare_queue``: a rule of the bucket for
    ``actions`` on keys with ``prefix`` and ``suffix``. Idempotent: the same rule is left as it is. Refused
    when the queue already has other rules on the bucket (the service may replace them on a new rule)
    or when the rule overlaps another queue's. Returns ``{"rule_id", "actions", "prefix", "suffix"}``.
    API token permissions: R2 write, Queues write. docs/airflow.md, "Files landing in R2".

    :param bucket: the R2 bucket (templated).
    :param cloudflare_queue: the queue, by id or name (templated; required: never the connection's).
    :param actions: ``"object-create"`` (default), ``"object-delete"``, or R2 actions (``PutObject``,
        ``CopyObject``, ``CompleteMultipartUpload``, ``DeleteObject``, ``LifecycleDeletion``).
    :param prefix: only keys starting with it (templated).
    :param suffix: only keys ending with it (templated).
    :param description: the rule's description.
    :param jurisdiction: the bucket's jurisdiction (``default``, ``eu``, ``us``, ``fedramp``, ``fedramp-high``).
    :param account_id: account id (templated).
    :param cloudflare_queues_conn_id: the Airflow connection (templated).
    """

    template_fields: Sequence[str] = (*QUEUE_TEMPLATE_FIELDS, "bucket", "prefix", "suffix")

    def __init__(
        self,
        *,
        bucket: str,
        actions: Sequence[str] | str = "object-create",
        prefix: str | None = None,
        suffix: str | None = None,
        description: str | None = None,
        jurisdiction: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(bucket=bucket, jurisdiction=jurisdiction, **kwargs)
        self.actions = expand_r2_actions(actions)
        self.prefix = prefix
        self.suffix = suffix
        self.description = description

    @closes_hook
    def execute(self, context: Context) -> dict[str, Any]:
        rule = self.hook.add_r2_notification_rule(
            self.bucket,
            self.queue_ref,
            actions=self.actions,
            prefix=self.prefix or None,
            suffix=self.suffix or None,
            description=self.description,
            jurisdiction=self.jurisdiction,
        )
        return {"rule_id": rule.rule_id, "actions": rule.actions, "prefix": rule.prefix, "suffix": rule.suffix}


class CloudflareQueuesRemoveR2NotificationRulesOperator(_R2RuleOperator):
    """
    Stop sending ``bucket``'s object events to ``cloudflare_queue``: remove the rules ``rule_ids`` (never
    every rule at once, as the service's bare DELETE would). Ids of another queue's rules are refused and
    nothing is removed; ids already gone are skipped. Returns the ids removed. API token permission: R2 write.

    :param bucket: the R2 bucket (templated).
    :param cloudflare_queue: the queue, by id or name (templated; required: never the connection's).
    :param rule_ids: the rules to remove (templated: e.g. the add operator's XCom ``rule_id``).
    :param jurisdiction: the bucket's jurisdiction.
    :param account_id: account id (templated).
    :param cloudflare_queues_conn_id: the Airflow connection (templated).
    """

    template_fields: Sequence[str] = (*QUEUE_TEMPLATE_FIELDS, "bucket", "rule_ids")

    def __init__(
        self, *, bucket: str, rule_ids: Sequence[str] | str, jurisdiction: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(bucket=bucket, jurisdiction=jurisdiction, **kwargs)
        self.rule_ids = rule_ids

    @closes_hook
    def execute(self, context: Context) -> list[str]:
        rule_ids = [self.rule_ids] if isinstance(self.rule_ids, str) else list(self.rule_ids)
        removed = self.hook.remove_r2_notification_rules(
            self.bucket, self.queue_ref, rule_ids, jurisdiction=self.jurisdiction
        )
        self.log.info("Removed %d rule(s) of bucket %s for queue %s", len(removed), self.bucket, self.queue_ref)
        return removed


class CloudflareQueuesCreateEventSubscriptionOperator(CloudflareQueuesBaseOperator):
    """
    Send ``source``'s ``events`` to the queue ``cloudflare_queue`` with an event subscription named
    ``subscription``. Idempotent by name: a subscription with this name and these settings is left as it
    is; one with other settings fails the task (update or delete it). Returns the subscription's id.

    :param subscription: the subscription's name (templated).
    :param cloudflare_queue: the destination queue, by id or name (templated; required).
    :param source: ``{"type": "workflows.workflow", "workflow_name": ...}``, ``{"type": "kv"}``... (one of
        ``images``, ``kv``, ``r2``, ``superSlurper``, ``vectorize``, ``workersAi.model`` (+ ``model_name``),
        ``workersBuilds.worker`` (+ ``worker_name``), ``workers.script``, ``workflows.workflow``
        (+ ``workflow_name``)).
    :param events: the source's event names (``instance.completed``...).
    :param enabled: send events from the start (default ``True``).
    :param account_id: account id (templated).
    :param cloudflare_queues_conn_id: the Airflow connection (templated).
    """

    _needs_named_queue = True
    template_fields: Sequence[str] = (*QUEUE_TEMPLATE_FIELDS, "subscription")
    ui_color = "#fbad41"

    def __init__(
        self,
        *,
        subscription: str,
        source: dict[str, Any],
        events: Sequence[str] | str,
        enabled: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.subscription = subscription
        self.source = validate_source(source)
        self.events = validate_events(events)
        self.enabled = enabled

    @closes_hook
    def execute(self, context: Context) -> str:
        created = self.hook.create_event_subscription(
            self.subscription, self.queue_ref, source=self.source, events=self.events, enabled=self.enabled
        )
        return created.id


class CloudflareQueuesUpdateEventSubscriptionOperator(CloudflareQueuesBaseOperator):
    """
    Enable or disable the event subscription ``subscription`` (its name or id), or change its events,
    e.g. around a maintenance window. Fails when there is no such subscription (nothing is created).
    Returns ``{"id", "enabled", "events"}``.

    :param subscription: the subscription, by name or id (templated).
    :param enabled: ``True`` to send events, ``False`` to stop; unchanged when ``None``.
    :param events: its new event names; unchanged when ``None``.
    :param account_id: account id (templated).
    :param cloudflare_queues_conn_id: the Airflow connection (templated).
    """

    _uses_cloudflare_queue = False
    template_fields: Sequence[str] = ("subscription", "account_id", "cloudflare_queues_conn_id")
    ui_color = "#fbad41"

    def __init__(
        self,
        *,
        subscription: str,
        enabled: bool | None = None,
        events: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.subscription = subscription
        self.enabled = enabled
        self.events = None if events is None else validate_events(events)

    @closes_hook
    def execute(self, context: Context) -> dict[str, Any]:
        updated = self.hook.update_event_subscription(self.subscription, enabled=self.enabled, events=self.events)
        return {"id": updated.id, "enabled": updated.enabled, "events": updated.events}


class CloudflareQueuesDeleteEventSubscriptionOperator(CloudflareQueuesBaseOperator):
    """
    Delete the event subscription ``subscription`` (its name or id). Idempotent: none left is success.
    Returns the id deleted, or ``None``.

    :param subscription: the subscription, by name or id (templated).
    :param account_id: account id (templated).
    :param cloudflare_queues_conn_id: the Airflow connection (templated).
    """

    _uses_cloudflare_queue = False
    template_fields: Sequence[str] = ("subscription", "account_id", "cloudflare_queues_conn_id")
    ui_color = "#fbad41"

    def __init__(self, *, subscription: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.subscription = subscription

    @closes_hook
    def execute(self, context: Context) -> str | None:
        return self.hook.delete_event_subscription(self.subscription)
