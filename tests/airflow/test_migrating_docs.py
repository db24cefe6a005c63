"""docs/migrating.md: the moved DAG parses as written, and each name means what the table says."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).parents[2] / "docs" / "migrating.md"


def test_the_moved_dag_of_the_migration_page() -> None:
    code = textwrap.dedent(DOCS.read_text().split("```python\n", 1)[1].split("```", 1)[0])
    namespace: dict[str, Any] = {"__name__": "migrating_docs"}
    exec(compile(code, str(DOCS), "exec"), namespace)  # noqa: S102 - our own documentation
    dag = namespace["dag"]
    tasks = {task.task_id: task for task in dag.tasks}
    assert set(tasks) == {"publish", "wait", "load", "take", "pull", "ack"}
    load = tasks["load"]
    assert (load.cloudflare_queue, load.batch_size, load.max_messages) == ("orders", 10, 30)
    assert load.visibility_timeout == 300 and load.message_retry_delay == 60  # seconds, from a timedelta
    assert load.queue == tasks["publish"].queue != "orders"  # queue= stays Airflow's executor queue
    assert load.retry_delay != timedelta(seconds=60)  # and retry_delay= the task's
    assert tasks["take"].ack is True and tasks["pull"].ack is False
    assert tasks["wait"].deferrable is True
    assert tasks["ack"].upstream_task_ids == {"pull"}


def test_the_page_lists_every_name_that_gets_guidance() -> None:
    """The list on the page is the table the operators check, and its example is the message they give."""
    import re

    from airflow_provider_cfqueues.api.guidance import FOREIGN_NAMES
    from airflow_provider_cfqueues.operators.consume import CloudflareQueuesPullAndAckOperator

    page = DOCS.read_text()
    listed = page.split("with the name to use here", 1)[1].split("For example", 1)[0]
    assert set(re.findall(r"`(\w+)`", listed)) == set(FOREIGN_NAMES)
    example = page.split("```text\n", 1)[1].split("```", 1)[0].strip()
    with pytest.raises(TypeError) as refused:
        CloudflareQueuesPullAndAckOperator(task_id="t", cloudflare_queue="q", process=print, max_number_of_messages=10)
    assert f"TypeError: {refused.value}".startswith(example)
