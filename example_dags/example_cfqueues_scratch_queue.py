"""
A queue per DAG run: create it (with an HTTP pull consumer), push the run's work items, drain them
with per-message ack, and delete the queue whatever happened (``trigger_rule="all_done"``).

The queue name comes from the run id (hashed: run ids hold characters a queue name cannot), so a
retried task finds the same queue: creating is idempotent (``if_exists="ignore"``) and so is deleting
(``if_missing="ignore"``). Deleting a queue deletes the messages still in it: the ``verify`` task
fails the run when anything was left unprocessed, so a lost item never goes unnoticed.
"""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import datetime, timedelta
from typing import Any

try:  # Airflow 3
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models.param import Param

from airflow_provider_cfqueues.api.models import PulledMessage
from airflow_provider_cfqueues.operators.admin import (
    CloudflareQueuesCreateQueueOperator,
    CloudflareQueuesDeleteQueueOperator,
)
from airflow_provider_cfqueues.operators.queues import (
    CloudflareQueuesPullAndAckOperator,
    CloudflareQueuesPushOperator,
)

SCHEMA = "CREATE TABLE IF NOT EXISTS thumbnails (image_id INTEGER PRIMARY KEY, run_id TEXT, width INTEGER)"


def render_thumbnail(message: PulledMessage, db_path: str, run_id: str) -> None:
    """One work item; idempotent (keyed on ``image_id``): a message may be delivered twice."""
    with sqlite3.connect(db_path, timeout=30) as db:
        db.execute(SCHEMA)
        db.execute(
            "INSERT OR REPLACE INTO thumbnails VALUES (?, ?, ?)",
            (message.body["image_id"], run_id, message.body["width"] // 4),
        )


with DAG(
    dag_id="cfqueues_example_scratch_queue",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "images": Param(200, type="integer", minimum=1),
        "db_path": Param("/tmp/cfqueues_example_scratch.sqlite", type="string"),  # noqa: S108 - an example
    },
    tags=["example", "cloudflare-queues"],
) as dag:

    @task
    def queue_name(dag_run: Any = None) -> str:
        """A valid queue name, the same for every task (and every retry) of this run."""
        digest = hashlib.sha256(f"{dag_run.dag_id}/{dag_run.run_id}".encode()).hexdigest()[:16]
        return f"scratch-{digest}"

    @task
    def work_items(params: dict[str, Any] | None = None) -> list[dict[str, int]]:
        assert params is not None
        return [{"image_id": n, "width": 640 + n % 7 * 160} for n in range(params["images"])]

    name = queue_name()
    create = CloudflareQueuesCreateQueueOperator(
        task_id="create_queue",
        cloudflare_queue=name,
        batch_size=50,
        visibility_timeout=timedelta(minutes=2),
        max_retries=3,
        message_retention_period=timedelta(hours=6),  # a forgotten scratch queue does not keep data long
    )
    push = CloudflareQueuesPushOperator(task_id="push", cloudflare_queue=name, messages=work_items())
    drain = CloudflareQueuesPullAndAckOperator(
        task_id="drain",
        cloudflare_queue=name,
        process=render_thumbnail,
        process_kwargs={"db_path": "{{ params.db_path }}", "run_id": "{{ run_id }}"},
        max_messages="{{ params.images }}",
        concurrency=4,
    )
    delete = CloudflareQueuesDeleteQueueOperator(task_id="delete_queue", cloudflare_queue=name, trigger_rule="all_done")

    @task
    def verify(
        summary: dict[str, Any], params: dict[str, Any] | None = None, run_id: str | None = None
    ) -> dict[str, int]:
        assert params is not None
        with sqlite3.connect(params["db_path"]) as db:
            (rows,) = db.execute("SELECT COUNT(*) FROM thumbnails WHERE run_id = ?", (run_id,)).fetchone()
        if rows != params["images"] or summary["failed"]:
            raise ValueError(f"{rows} of {params['images']} images rendered; {summary['failed']} failed")
        return {"rendered": rows, "acked": summary["acked"]}

    create >> push >> drain >> delete
    verify(drain.output)
