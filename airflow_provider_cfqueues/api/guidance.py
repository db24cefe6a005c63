"""
Arguments that mean something else here, caught when the DAG is parsed: Airflow's ``queue=`` given
without ``cloudflare_queue=``, and the names of Airflow's SQS, Pub/Sub, Kafka and Service Bus providers.

Without these checks a moved DAG fails with Airflow's generic "Invalid arguments" (or, for ``queue=``,
runs on an executor queue nobody listens to and drains the connection's default Cloudflare queue).
The table here is the one docs/migrating.md shows, in the form of error messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: where the whole table is, for every message
MIGRATING_DOC = "docs/migrating.md"

#: another provider's argument name -> (whose name it is, what to write here)
FOREIGN_NAMES: Mapping[str, tuple[str, str]] = {
    "sqs_queue": ("Amazon SQS", "cloudflare_queue=<queue id or name>"),
    "queue_url": ("Amazon SQS", "cloudflare_queue=<queue id or name> (a queue is named by id or name, not a URL)"),
    "queue_name": ("Azure Service Bus", "cloudflare_queue=<queue id or name>"),
    "topic": ("Kafka / Pub/Sub", "cloudflare_queue=<queue id or name>: there are no topics, the queue is the target"),
    "topics": (
        "Kafka",
        "cloudflare_queue=<queue id or name>: one queue per task; map over several with "
        ".expand(cloudflare_queue=[...])",
    ),
    "subscription": (
        "Google Pub/Sub",
        "cloudflare_queue=<queue id or name>: a queue has one HTTP pull consumer and no subscriptions",
    ),
    "project_id": ("Google Pub/Sub", "account_id= (or the connection's account_id extra)"),
    "aws_conn_id": ("Amazon", "cloudflare_queues_conn_id="),
    "gcp_conn_id": ("Google", "cloudflare_queues_conn_id="),
    "kafka_config_id": ("Kafka", "cloudflare_queues_conn_id="),
    "azure_service_bus_conn_id": ("Azure Service Bus", "cloudflare_queues_conn_id="),
    "region_name": ("Amazon", "nothing: queues have no region (a queue's jurisdiction is set when it is created)"),
    "max_number_of_messages": (
        "Amazon SQS",
        "batch_size= (messages per pull, 1 to 100); max_messages= here is the total of a whole run",
    ),
    "max_batch_size": ("Kafka", "batch_size= (messages per pull, 1 to 100)"),
    "num_batches": (
        "Amazon SQS",
        "max_messages= (the total of a run; default: until the queue is empty), or max_batches= on "
        "CloudflareQueuesPullAndAckOperator",
    ),
    "wait_time_seconds": (
        "Amazon SQS",
        "nothing: a pull answers at once (there is no long polling). To wait for messages use "
        "CloudflareQueuesBacklogSensor or the message trigger; a drain's wait_for_in_flight= waits for "
        "messages leased elsewhere",
    ),
    "poll_timeout": ("Kafka", "nothing: a pull answers at once (there is no long polling)"),
    "return_immediately": ("Google Pub/Sub", "nothing: a pull always answers at once"),
    "delete_message_on_reception": (
        "Amazon SQS",
        "CloudflareQueuesPullOperator(ack=True) (at-most-once), or CloudflareQueuesPullAndAckOperator to "
        "ack each message once it is processed",
    ),
    "ack_messages": ("Google Pub/Sub", "CloudflareQueuesPullOperator(ack=True)"),
    "messages_callback": ("Google Pub/Sub", "process= on CloudflareQueuesPullAndAckOperator"),
    "apply_function": ("Kafka", "process= on CloudflareQueuesPullAndAckOperator"),
    "apply_function_batch": ("Kafka", 'process= with process_mode="batch" on CloudflareQueuesPullAndAckOperator'),
    "commit_cadence": (
        "Kafka",
        "nothing: CloudflareQueuesPullAndAckOperator acks each message when process returns",
    ),
    "message_content": ("Amazon SQS", "messages=[...] on CloudflareQueuesPushOperator (one message: [body])"),
    "message_body": (
        "Amazon SQS",
        "message= on CloudflareQueuesNotifier; messages=[...] on CloudflareQueuesPushOperator",
    ),
    "producer_function": ("Kafka", "messages= on CloudflareQueuesPushOperator (a list, or an XCom of one)"),
    "message_attributes": (
        "Amazon SQS",
        "nothing: Cloudflare messages carry no attributes; put them in the body",
    ),
    "message_group_id": (
        "Amazon SQS FIFO",
        "nothing: Cloudflare queues have no FIFO groups; order is best effort, so make processing order-independent",
    ),
    "message_deduplication_id": (
        "Amazon SQS FIFO",
        "nothing: Cloudflare queues do not deduplicate (delivery is at-least-once); make processing idempotent",
    ),
    "message_filtering": (
        "Amazon SQS",
        "message_filter= on the message trigger; in a drain, process= decides what to do with each message",
    ),
    "message_filtering_match_values": ("Amazon SQS", "message_filter= on the message trigger"),
    "message_filtering_config": ("Amazon SQS", "message_filter= on the message trigger"),
}


def foreign_names_error(operator: str, names: Iterable[str]) -> str | None:
    """The guidance for every name in ``names`` that another provider uses, or ``None`` if there is none."""
    found = [name for name in names if name in FOREIGN_NAMES]
    if not found:
        return None
    lines = [f"{operator} got argument(s) that other providers use and this one does not:"]
    for name in found:
        whose, here = FOREIGN_NAMES[name]
        lines.append(f"  {name}= ({whose}'s name): here, {here}")
    lines.append(f"Names from SQS, Pub/Sub and Kafka mapped to this provider's: {MIGRATING_DOC}")
    return "\n".join(lines)


def executor_queue_error(operator: str, task_id: str, queue: object) -> str:
    """Why ``queue=`` without ``cloudflare_queue=`` is refused, with both meanings and both fixes."""
    return (
        f"{operator} {task_id!r} got queue={queue!r} and no cloudflare_queue=. On every Airflow operator, queue= "
        f"is the executor queue: the Celery or Kubernetes queue the task waits on until a worker listening to "
        f"it takes it. The Cloudflare queue is cloudflare_queue=. If {queue!r} is the Cloudflare queue, write "
        f"cloudflare_queue={queue!r} (and drop queue=). If it is the executor queue, name the Cloudflare queue "
        f"too: cloudflare_queue=<id or name> beside queue={queue!r}, or set queue in default_args, which "
        f"stays Airflow's. ({MIGRATING_DOC})"
    )
