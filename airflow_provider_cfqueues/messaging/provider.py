"""
The ``cloudflare+queues`` scheme of the common-messaging provider, so that::

    MessageQueueTrigger(scheme="cloudflare+queues", cloudflare_queue="inbox", batch_size=50)

resolves to :class:`~airflow_provider_cfqueues.triggers.message.CloudflareQueuesMessageTrigger` (all
keyword arguments but ``scheme`` are passed to it). ``MessageQueueTrigger`` keeps ``queue=`` for a
queue URI (its older, deprecated form): ``queue="cloudflare+queues://inbox"`` works too, and a bare
``queue="inbox"`` fails at once, saying to write ``cloudflare_queue="inbox"``. Needs
``apache-airflow-providers-common-messaging`` (the ``common-messaging`` extra); the rest of the
package works without it.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.messaging.providers.base_provider import BaseMessageQueueProvider

from ..triggers.message import SCHEME, CloudflareQueuesMessageTrigger

URI_PREFIX = f"{SCHEME}://"


def _claimed_elsewhere(queue: str, me: BaseMessageQueueProvider) -> bool:
    """Whether another installed provider takes ``queue`` (then a bare name is not ours to refuse)."""
    from airflow.providers.common.messaging.triggers.msg_queue import MESSAGE_QUEUE_PROVIDERS

    return any(provider.queue_matches(queue) for provider in MESSAGE_QUEUE_PROVIDERS if provider is not me)


class CloudflareQueuesMessageQueueProvider(BaseMessageQueueProvider):
    """Cloudflare Queues for ``MessageQueueTrigger``: scheme ``cloudflare+queues`` or a ``cloudflare+queues://`` URI."""

    scheme = SCHEME

    def trigger_class(self) -> type[CloudflareQueuesMessageTrigger]:
        return CloudflareQueuesMessageTrigger

    def queue_matches(self, queue: str) -> bool:
        if queue.startswith(URI_PREFIX):
            return True
        if "://" not in queue and not _claimed_elsewhere(queue, self):
            raise ValueError(
                f"MessageQueueTrigger reads queue={queue!r} as a queue URI, not as a queue name (and then ignores "
                f"scheme=). For Cloudflare Queues write MessageQueueTrigger(scheme={SCHEME!r}, "
                f"cloudflare_queue={queue!r}), or queue={URI_PREFIX + queue!r}"
            )
        return False

    def trigger_kwargs(self, queue: str, **kwargs: Any) -> dict[str, Any]:
        name = queue.removeprefix(URI_PREFIX).strip("/")
        if not name:
            raise ValueError(f"{queue!r} names no queue: write {URI_PREFIX}<queue name or id>")
        return {"cloudflare_queue": name}
