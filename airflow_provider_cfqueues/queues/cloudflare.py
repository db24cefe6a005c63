"""
The ``cloudflare+queues`` scheme of the common-messaging provider, so that::

    MessageQueueTrigger(scheme="cloudflare+queues", cloudflare_queue="inbox", batch_size=50)

resolves to :class:`~airflow_provider_cfqueues.triggers.queues.CloudflareQueuesMessageTrigger` (all
keyword arguments but ``scheme`` are passed to it). Needs ``apache-airflow-providers-common-messaging``
(the ``common-messaging`` extra); the rest of the package works without it.
"""

from __future__ import annotations

from airflow.providers.common.messaging.providers.base_provider import BaseMessageQueueProvider

from ..triggers.queues import CloudflareQueuesMessageTrigger

SCHEME = "cloudflare+queues"


class CloudflareQueuesMessageQueueProvider(BaseMessageQueueProvider):
    """Cloudflare Queues for ``MessageQueueTrigger`` (scheme ``cloudflare+queues``)."""

    scheme = SCHEME

    def trigger_class(self) -> type[CloudflareQueuesMessageTrigger]:
        return CloudflareQueuesMessageTrigger
