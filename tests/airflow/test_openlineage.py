"""Push and pull operators report their queue to OpenLineage, and do nothing without the provider."""

from __future__ import annotations

import subprocess
import sys

import pytest

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.operators.queues import (
    CloudflareQueuesPullAndAckOperator,
    CloudflareQueuesPullOperator,
    CloudflareQueuesPushOperator,
)

pytest.importorskip("airflow.providers.openlineage")


def test_push_reports_an_output_and_pulls_an_input(emulator: CloudflareQueuesEmulator, connection: str) -> None:
    namespace = f"cloudflare-queues://{emulator.account_id}"
    push = CloudflareQueuesPushOperator(task_id="push", cloudflare_queue="orders", messages=[1])
    lineage = push.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.outputs] == [(namespace, "orders")] and lineage.inputs == []
    for pull in (
        CloudflareQueuesPullAndAckOperator(task_id="drain", cloudflare_queue="orders", process=print),
        CloudflareQueuesPullOperator(task_id="pull", cloudflare_queue="orders"),
    ):
        lineage = pull.get_openlineage_facets_on_complete(None)
        assert [(d.namespace, d.name) for d in lineage.inputs] == [(namespace, "orders")] and lineage.outputs == []


def test_no_connection_means_no_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CFQ_BROKEN", '{"conn_type": "cloudflare_queues", "password": "t"}')
    push = CloudflareQueuesPushOperator(
        task_id="p", cloudflare_queue="q", messages=[1], cloudflare_queues_conn_id="cfq_broken"
    )
    assert push.get_openlineage_facets_on_complete(None) is None


def test_without_the_openlineage_provider_nothing_happens() -> None:
    probe = (
        "import sys, airflow\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.startswith('airflow.providers.openlineage'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "for name in [m for m in sys.modules if m.startswith('airflow.providers.openlineage')]:\n"
        "    del sys.modules[name]\n"
        "from airflow_provider_cfqueues.operators.queues import CloudflareQueuesPushOperator\n"
        "op = CloudflareQueuesPushOperator(task_id='p', cloudflare_queue='q', messages=[1])\n"
        "print('RESULT', op.get_openlineage_facets_on_complete(None))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert "RESULT None" in result.stdout, result.stderr[-2000:]
