"""Provider metadata that Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from . import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-cfqueues",
        "name": "Cloudflare Queues",
        "description": "Cloudflare Queues (https://developers.cloudflare.com/queues/) provider for Apache Airflow.",
        "versions": [__version__],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_cfqueues.hooks.queues.CloudflareQueuesHook",
                "connection-type": "cloudflare_queues",
            }
        ],
    }
