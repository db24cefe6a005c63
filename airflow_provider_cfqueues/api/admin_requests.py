"""
The administration endpoints as plain requests: create, change and delete queues, pause and resume
delivery, purge, and the HTTP pull consumer's create, replace and delete. Input is validated here,
in the user's units (seconds, ``timedelta``); milliseconds only on the wire.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from .errors import CloudflareQueuesValidationError
from .limits import MAX_MAX_RETRIES
from .models import (
    ConsumerRequest,
    ConsumerSettingsRequest,
    CreateQueueRequest,
    PurgeRequest,
    QueueSettingsRequest,
    UpdateQueueRequest,
)
from .operations import (
    ANY_ANSWER,
    CONSUMER_ANSWER,
    PURGE_STATUS_ANSWER,
    QUEUE_ANSWER,
    ApiRequest,
    is_queue_id,
    queue_path,
    validate_account_id,
    validate_id,
)
from .units import batch_size as read_batch_size
from .units import count, delay_seconds, lease_ms, whole_seconds

#: message retention: 60 s to 14 days (paid plans; 24 h on the free plan)
MIN_RETENTION_SECONDS = 60
MAX_RETENTION_SECONDS = 1_209_600


#: Cloudflare's rule for the name of a new queue (the service refuses others with code 11003)
NEW_QUEUE_NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def validate_queue_name(name: object, what: str = "queue name") -> str:
    """
    A name for a new queue (or a dead-letter queue the service creates), by Cloudflare's rule: 1 to 63
    lowercase letters, digits and dashes, starting and ending with a letter or digit. A name of 32
    hexadecimal characters is refused too: the provider reads such a string as a queue id, so the
    queue could be created but never found or deleted by name. (Existing queues are looked up by
    whatever name the service lists.)
    """
    if not isinstance(name, str) or not NEW_QUEUE_NAME_RE.fullmatch(name):
        raise CloudflareQueuesValidationError(
            f"a {what} is 1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit "
            f"(Cloudflare's rule, error 11003), got {name!r}"
        )
    if is_queue_id(name):
        raise CloudflareQueuesValidationError(
            f"a {what} of 32 hexadecimal characters reads as a queue id: {name!r} could be created but never found "
            "or deleted by name; choose another name"
        )
    return name


def queue_settings(
    *,
    delivery_delay: float | timedelta | str | None = None,
    message_retention_period: float | timedelta | str | None = None,
    delivery_paused: bool | None = None,
) -> QueueSettingsRequest:
    """Queue settings from the user's units; what is ``None`` is left out."""
    return QueueSettingsRequest(
        delivery_delay=delay_seconds(delivery_delay, "delivery_delay"),
        message_retention_period=whole_seconds(
            message_retention_period,
            "message_retention_period",
            low=MIN_RETENTION_SECONDS,
            high=MAX_RETENTION_SECONDS,
        ),
        delivery_paused=delivery_paused,
    )


@dataclass(frozen=True)
class ConsumerSettings:
    """
    An HTTP pull consumer's settings as a user gives them; ``None`` leaves a setting alone (on update)
    or to the service's default (on create).

    :param batch_size: messages per pull by default (1 to 100).
    :param max_retries: retries before a message goes to the dead-letter queue or is deleted (0 to 100).
    :param retry_delay: seconds (or a ``timedelta``) before a retried message comes back; whole seconds.
    :param visibility_timeout: seconds (or a ``timedelta``) a pull leases its messages for by default.
    :param dead_letter_queue: the queue name exhausted messages go to (``""`` for none).
    """

    batch_size: int | str | None = None
    max_retries: int | str | None = None
    retry_delay: float | timedelta | str | None = None
    visibility_timeout: float | timedelta | str | None = None
    dead_letter_queue: str | None = None

    def wire(self) -> ConsumerSettingsRequest:
        """Validated, in the wire's units."""
        return ConsumerSettingsRequest(
            batch_size=read_batch_size(self.batch_size),
            max_retries=count(self.max_retries, "max_retries", high=MAX_MAX_RETRIES),
            retry_delay=delay_seconds(self.retry_delay, "retry_delay"),
            visibility_timeout_ms=lease_ms(self.visibility_timeout),
        )

    def dlq(self) -> str | None:
        if self.dead_letter_queue is None or self.dead_letter_queue == "":
            return self.dead_letter_queue
        return validate_queue_name(self.dead_letter_queue, "dead-letter queue name")


def _json(model: object) -> bytes:
    return model.model_dump_json(exclude_none=True).encode()  # type: ignore[attr-defined, no-any-return]


#: where a queue's data may be kept (Cloudflare's jurisdictions)
Jurisdiction = Literal["eu", "us", "fedramp"]
JURISDICTIONS: tuple[Jurisdiction, ...] = ("eu", "us", "fedramp")


def validate_jurisdiction(jurisdiction: object) -> Jurisdiction | None:
    """``None`` (the default location), or one of :data:`JURISDICTIONS`."""
    if jurisdiction is None:
        return None
    if jurisdiction == "eu" or jurisdiction == "us" or jurisdiction == "fedramp":
        return jurisdiction
    raise CloudflareQueuesValidationError(
        f"jurisdiction must be one of {', '.join(JURISDICTIONS)} (or None), got {jurisdiction!r}"
    )


def create_queue_request(
    account_id: str, name: str, settings: QueueSettingsRequest, jurisdiction: str | None = None
) -> ApiRequest:
    body = CreateQueueRequest(
        queue_name=validate_queue_name(name), settings=settings, jurisdiction=validate_jurisdiction(jurisdiction)
    )
    return ApiRequest(
        "create_queue", "POST", f"/accounts/{validate_account_id(account_id)}/queues", _json(body), answer=QUEUE_ANSWER
    )


def update_queue_request(account_id: str, queue_id: str, settings: QueueSettingsRequest) -> ApiRequest:
    if not settings.model_dump(exclude_none=True):
        raise CloudflareQueuesValidationError("nothing to change: give at least one setting")
    return ApiRequest(
        "update_queue",
        "PATCH",
        queue_path(account_id, queue_id),
        _json(UpdateQueueRequest(settings=settings)),
        answer=QUEUE_ANSWER,
    )


def delete_queue_request(account_id: str, queue_id: str) -> ApiRequest:
    return ApiRequest("delete_queue", "DELETE", queue_path(account_id, queue_id), answer=ANY_ANSWER)


def purge_request(account_id: str, queue_id: str) -> ApiRequest:
    return ApiRequest(
        "purge", "POST", queue_path(account_id, queue_id, "/purge"), _json(PurgeRequest()), answer=ANY_ANSWER
    )


def purge_status_request(account_id: str, queue_id: str) -> ApiRequest:
    return ApiRequest("purge_status", "GET", queue_path(account_id, queue_id, "/purge"), answer=PURGE_STATUS_ANSWER)


def create_consumer_request(account_id: str, queue_id: str, body: ConsumerRequest) -> ApiRequest:
    return ApiRequest(
        "create_consumer", "POST", queue_path(account_id, queue_id, "/consumers"), _json(body), answer=CONSUMER_ANSWER
    )


def replace_consumer_request(account_id: str, queue_id: str, consumer_id: str, body: ConsumerRequest) -> ApiRequest:
    path = queue_path(account_id, queue_id, f"/consumers/{validate_id(consumer_id, 'consumer id')}")
    return ApiRequest("update_consumer", "PUT", path, _json(body), answer=CONSUMER_ANSWER)


def delete_consumer_request(account_id: str, queue_id: str, consumer_id: str) -> ApiRequest:
    path = queue_path(account_id, queue_id, f"/consumers/{validate_id(consumer_id, 'consumer id')}")
    return ApiRequest("delete_consumer", "DELETE", path, answer=ANY_ANSWER)
