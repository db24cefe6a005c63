"""Provider metadata that Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from . import __version__
from .hooks.connection_form import CONN_TYPE, HOOK_NAME, provider_info_behaviour, provider_info_fields

INTEGRATION = "Cloudflare Queues"


def get_provider_info() -> dict[str, Any]:
    """Everything Airflow reads about the provider, without importing Airflow or the hook."""
    modules = "airflow_provider_cfqueues"
    return {
        "package-name": "airflow-provider-cfqueues",
        "name": "Cloudflare Queues",
        # no RST link: the UI strips RST syntax, and a URL followed by punctuation becomes a broken link
        "description": "Cloudflare Queues for Airflow: push, pull with per-message ack/retry, backlog sensors, "
        "event-driven scheduling and queue administration. Cloudflare Queues: https://developers.cloudflare.com/queues/",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://developers.cloudflare.com/queues/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": [f"{modules}.hooks.queues"]}],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    f"{modules}.operators.push",
                    f"{modules}.operators.consume",
                    f"{modules}.operators.pull_ack",
                    f"{modules}.operators.peek",
                    f"{modules}.operators.purge",
                    f"{modules}.operators.admin",
                    f"{modules}.operators.events",
                ],
            }
        ],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": [f"{modules}.sensors.queues"]}],
        "triggers": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    f"{modules}.triggers.queues",
                    f"{modules}.triggers.backlog",
                    f"{modules}.triggers.purge",
                    f"{modules}.triggers.message",
                ],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": f"{modules}.hooks.queues.CloudflareQueuesHook",
                "hook-name": HOOK_NAME,
                "connection-type": CONN_TYPE,
                "conn-fields": provider_info_fields(),
                "ui-field-behaviour": provider_info_behaviour(),
            }
        ],
        "notifications": [f"{modules}.notifications.cloudflare_queues.CloudflareQueuesNotifier"],
        "queues": [f"{modules}.messaging.provider.CloudflareQueuesMessageQueueProvider"],
    }
