"""
CSV files landing in an R2 bucket, loaded into SQLite: the bucket's event-notification rule sends a
message per object created under ``incoming/`` with ``.csv`` to ``example-r2-events``
(``CloudflareQueuesAddR2NotificationRuleOperator`` sets it up, idempotently), and a drain reads each
notification's object through R2's S3-compatible API and loads its rows.

* Notifications are at-least-once and carry no event id: each object is loaded once, keyed by
  ``(bucket, key, eTag)`` in one transaction with its rows, so a duplicate notification changes
  nothing.
* An object deleted before its notification is handled is gone (R2 answers 404): the load reports it
  and the message is acked, since retrying cannot bring the object back.
* A message that is not an R2 notification is rejected at once (``RejectMessage``) to
  ``example-r2-unreadable``.

Reading objects: R2's S3-compatible endpoint ``https://<account_id>.r2.cloudflarestorage.com`` with
an R2 API token's access key id and secret, in the Airflow connection ``r2_s3`` (host: the endpoint,
login / password: the key pair) and ``pip install boto3``. For tests and the demo, the environment
variable ``CFQ_EXAMPLE_OBJECT_DIR`` names a local directory standing in for the buckets
(``<dir>/<bucket>/<key>``).

On Airflow 3 this file defines the event-driven variant too, ``cfqueues_example_r2_events``: an
asset watcher with the ``r2`` shorthand takes the notifications of ``example-r2-uploads``, and each
run loads the objects of the events that started it with the same ``load_object``. Its notifications
are acked once their asset event is stored (``ack="persisted"``): a run that fails does not bring them
back; clear its failed task to load them again (docs/testing.md). Its SQLite file is
``CFQ_EXAMPLE_R2_DB`` (default ``/tmp/cfqueues_example_r2.sqlite``).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

try:  # Airflow 3
    from airflow.sdk import DAG, BaseHook, Param
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.hooks.base import BaseHook
    from airflow.models.param import Param

from airflow_provider_cfqueues.api.events import R2ObjectEvent
from airflow_provider_cfqueues.api.models import PulledMessage
from airflow_provider_cfqueues.consume.poison import RejectMessage
from airflow_provider_cfqueues.operators.consume import CloudflareQueuesPullAndAckOperator
from airflow_provider_cfqueues.operators.events import CloudflareQueuesAddR2NotificationRuleOperator

QUEUE = "example-r2-events"
BUCKET = "example-uploads"
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS loaded_objects (bucket TEXT, key TEXT, etag TEXT, rows INTEGER, "
    "PRIMARY KEY (bucket, key, etag))",
    "CREATE TABLE IF NOT EXISTS csv_rows (bucket TEXT, key TEXT, line INTEGER, data TEXT)",
)
log = logging.getLogger(__name__)


def read_object(bucket: str, key: str) -> bytes | None:
    """The object's bytes through R2's S3-compatible API, or ``None`` when it no longer exists."""
    local = os.environ.get("CFQ_EXAMPLE_OBJECT_DIR")
    if local:  # the stand-in of tests and the demo
        path = Path(local, bucket, key)
        return path.read_bytes() if path.is_file() else None
    import boto3  # R2 speaks S3

    connection = BaseHook.get_connection("r2_s3")
    s3 = boto3.client(
        "s3",
        endpoint_url=connection.host,
        aws_access_key_id=connection.login,
        aws_secret_access_key=connection.password,
        region_name="auto",
    )
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]
    except s3.exceptions.NoSuchKey:
        return None


def load_object(bucket: str, key: str, etag: str | None, db_path: str) -> str:
    """
    Load one object's rows, once per (bucket, key, eTag), in one transaction; what happened, in words
    (``loaded``, ``duplicate`` or ``deleted``). The scheduled drain and the event-driven DAG share it.
    """
    with sqlite3.connect(db_path, timeout=30) as db:
        for statement in SCHEMA:
            db.execute(statement)
        seen = db.execute(
            "SELECT 1 FROM loaded_objects WHERE bucket = ? AND key = ? AND etag = ?", (bucket, key, etag)
        ).fetchone()
        if seen:
            log.info("%s/%s (eTag %s) is loaded already: a duplicate notification", bucket, key, etag)
            return "duplicate"
        content = read_object(bucket, key)
        if content is None:
            log.warning("%s/%s was deleted before it was loaded: nothing to load", bucket, key)
            return "deleted"
        rows = list(csv.reader(io.StringIO(content.decode("utf-8"))))
        db.executemany(
            "INSERT INTO csv_rows VALUES (?, ?, ?, ?)", [(bucket, key, n, ",".join(row)) for n, row in enumerate(rows)]
        )
        db.execute("INSERT INTO loaded_objects VALUES (?, ?, ?, ?)", (bucket, key, etag, len(rows)))
        return "loaded"


def load_notification(message: PulledMessage, db_path: str) -> None:
    """The drain's ``process``: load the object a notification names; reject what is no notification."""
    event = message.event
    if not isinstance(event, R2ObjectEvent):
        raise RejectMessage(message.event_problem or "not an R2 event notification")
    if not event.created:
        log.info("%s of %s/%s: nothing to load", event.action, event.bucket, event.key)
        return
    load_object(event.bucket, event.key, event.etag, db_path)


with DAG(
    dag_id="cfqueues_example_r2_csv",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"db_path": Param("/tmp/cfqueues_example_r2.sqlite", type="string")},  # noqa: S108 - an example
    tags=["example", "cloudflare-queues", "r2"],
) as dag:
    watch = CloudflareQueuesAddR2NotificationRuleOperator(
        task_id="watch_incoming_csv",
        bucket=BUCKET,
        cloudflare_queue=QUEUE,
        actions="object-create",
        prefix="incoming/",
        suffix=".csv",
        description="CSV files to load",
    )
    load = CloudflareQueuesPullAndAckOperator(
        task_id="load",
        cloudflare_queue=QUEUE,
        process=load_notification,
        process_kwargs={"db_path": "{{ params.db_path }}"},
        on_poison="example-r2-unreadable",
    )
    watch >> load


def loaded(db_path: str) -> list[dict[str, Any]]:
    """The objects loaded, for checks: ``{"bucket", "key", "etag", "rows"}``."""
    with sqlite3.connect(db_path) as db:
        for statement in SCHEMA:
            db.execute(statement)
        return [
            {"bucket": b, "key": k, "etag": e, "rows": r}
            for b, k, e, r in db.execute("SELECT bucket, key, etag, rows FROM loaded_objects ORDER BY key")
        ]


# -- the event-driven variant (Airflow 3) ---------------------------------------------------------

try:
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
    from airflow.sdk import Asset, AssetWatcher, task
except ImportError:  # Airflow 2.11, or no common-messaging provider: the scheduled DAG only
    MessageQueueTrigger = None

if MessageQueueTrigger is not None:
    EVENTS_QUEUE = "example-r2-uploads"
    incoming_csv = {"bucket": BUCKET, "prefix": "incoming/", "suffix": ".csv", "actions": "object-create"}
    watcher = MessageQueueTrigger(
        scheme="cloudflare+queues", cloudflare_queue=EVENTS_QUEUE, poll_interval=1, message_filter={"r2": incoming_csv}
    )
    uploads = Asset(
        f"cloudflare-queues://{EVENTS_QUEUE}", watchers=[AssetWatcher(name="r2_incoming_csv", trigger=watcher)]
    )

    with DAG(
        dag_id="cfqueues_example_r2_events",
        schedule=[uploads],
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["example", "cloudflare-queues", "r2"],
    ) as events_dag:

        @task
        def load_uploads(triggering_asset_events: Any = None) -> dict[str, str]:
            """Load every object of the events that started this run; what happened to each key."""
            db_path = os.environ.get("CFQ_EXAMPLE_R2_DB", "/tmp/cfqueues_example_r2.sqlite")  # noqa: S108 - an example
            outcomes = {}
            for event in triggering_asset_events[uploads]:
                for message in event.extra["payload"]["messages"]:
                    notified = message["event"]  # the typed R2 notification, as the trigger read it
                    outcomes[notified["key"]] = load_object(
                        notified["bucket"], notified["key"], notified["etag"], db_path
                    )
            return outcomes

        load_uploads()
