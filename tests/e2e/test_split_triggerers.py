"""
Two DAGs routing one queue across triggerers, end to end: a scheduler, API server, DAG processor and
one or two real triggerer processes on a temporary AIRFLOW_HOME, the emulator, and a consumer that
allows one delivery and has no dead-letter queue (any give-back deletes the message). The DAGs
(``split_dags/cfqueues_split_dags.py``) spell the queue differently (id, name) and ask for different
pull settings.

1. One triggerer: one loop; every message reaches its DAG's asset events once (and the DAGs run),
   none is given back.
2. Two triggerers with ``--capacity 1`` each, one watcher in each (read from the ``trigger`` table):
   both loops refuse to pull, each triggerer logs what to do, and a burst pushed then stays untouched.
3. The documented deployment (``[triggerer] queues_enabled``, one triggerer with ``--queues default``
   for deferred tasks, one without ``--queues`` for every watcher): both watchers land on the latter,
   and the burst reaches its DAGs.

The scheduler (LocalExecutor) and API server run the DAGs the stored events start.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

from ..helpers import TEST_TOKEN
from ..secrets_check import leaks_in_db, leaks_in_files
from .test_airflow_components import Airflow, connected_emulator

pytestmark = [pytest.mark.slow, pytest.mark.airflow3]

DAGS = Path(__file__).parent / "split_dags"
ASSETS = {"split_orders": "order", "split_refunds": "refund"}
SPLIT_HELD = "not pulling: the queue is watched from another triggerer process too"


@pytest.fixture(scope="module")
def emulator() -> Iterator[CloudflareQueuesEmulator]:
    with connected_emulator(**{"split-shop": {"max_retries": 0}}) as emulator:  # any give-back deletes
        yield emulator


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory, emulator: CloudflareQueuesEmulator) -> Iterator[Airflow]:
    components = Airflow(tmp_path_factory.mktemp("airflow-home"), emulator)
    components.env.update(
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        CFQUEUES_SPLIT_QUEUE_ID=emulator.queue("split-shop").queue_id,
        AIRFLOW__TRIGGERER__SHARED_STREAM_COHORT_GRACE_PERIOD="0",
    )
    try:
        components.cli("db", "migrate")
        for name in ("api-server", "scheduler", "dag-processor"):
            components.start_component(name)
        yield components
    finally:
        components.stop()


def journal(emulator: CloudflareQueuesEmulator, kind: str) -> Counter[str]:
    queue_id = emulator.queue("split-shop").queue_id
    return Counter(m for e in emulator.events if e.kind == kind and e.queue_id == queue_id for m in e.message_ids)


def routed(airflow: Airflow) -> Counter[tuple[str, str]]:
    """(asset name, message id) -> how many stored asset events carry it."""
    rows = airflow.query("SELECT a.name, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id")
    return Counter(
        (str(name), m["id"])
        for name, extra in rows
        for m in json.loads(str(extra)).get("payload", {}).get("messages", [])
    )


def placement(airflow: Airflow) -> dict[str, int | None]:
    """asset name -> the triggerer job running its watcher (from the trigger table)."""
    rows = airflow.query(
        "SELECT a.name, t.triggerer_id FROM trigger t JOIN asset_watcher x ON x.trigger_id = t.id "
        "JOIN asset a ON a.id = x.asset_id"
    )
    return {str(name): (int(job) if job is not None else None) for name, job in rows if str(name) in ASSETS}


def running_triggerers(airflow: Airflow) -> set[int]:
    rows = airflow.query("SELECT id FROM job WHERE job_type = 'TriggererJob' AND state = 'running'")
    return {int(job) for (job,) in rows}


def push(emulator: CloudflareQueuesEmulator, count: int) -> dict[str, str]:
    """Push orders and refunds in turn; return message id -> kind."""
    kinds = ["order" if n % 2 else "refund" for n in range(count)]
    before = set(journal(emulator, "push"))
    CloudflareQueuesHook(queue="split-shop").push_messages([{"kind": k, "n": n} for n, k in enumerate(kinds)])
    pushed = [m for e in emulator.events if e.kind == "push" for m in e.message_ids if m not in before]
    return dict(zip(pushed, kinds, strict=True))


def assert_routed(airflow: Airflow, sent: dict[str, str]) -> None:
    stored = routed(airflow)
    for message, kind in sent.items():
        asset = f"split_{kind}s"
        other = next(a for a in ASSETS if a != asset)
        assert stored[asset, message] == 1 and stored[other, message] == 0, (message, kind)


def test_watchers_of_one_queue_across_triggerers(airflow: Airflow, emulator: CloudflareQueuesEmulator) -> None:
    queue_id = emulator.queue("split-shop").queue_id
    pulls = lambda: emulator.app.queue_requests["pull", queue_id]  # noqa: E731

    # 1. one triggerer: one loop for both spellings and settings
    airflow.start_component("triggerer-0", ["triggerer"])
    airflow.wait_for("both watchers to run", lambda: len([j for j in placement(airflow).values() if j]) == 2)
    airflow.wait_for("the loop to poll", lambda: pulls() > 0)
    first = push(emulator, 200)
    airflow.wait_for("200 messages to reach their DAGs", lambda: len(routed(airflow)) >= 200)
    assert_routed(airflow, first)
    assert set(journal(emulator, "deliver").values()) == {1}  # pulled once each: one loop, nothing rejected
    assert not journal(emulator, "retry") and not journal(emulator, "drop")
    airflow.wait_for("every message to be acked", lambda: len(journal(emulator, "ack")) == 200)
    airflow.wait_for(
        "both DAGs to run",
        lambda: all("success" in airflow.run_states(f"cfqueues_split_{kind}s") for kind in ("order", "refund")),
    )
    airflow.terminate("triggerer-0")
    pulled_before = pulls()

    # 2. two triggerers, one watcher each: both sides refuse before any pull
    for n in (1, 2):
        airflow.start_component(f"triggerer-{n}", ["triggerer", "--capacity", "1"])
    airflow.wait_for(
        "one watcher on each triggerer",
        lambda: len(set(placement(airflow).values()) & running_triggerers(airflow)) == 2,
    )
    airflow.wait_for(
        "both triggerers to refuse the split",
        lambda: all(SPLIT_HELD in (airflow.home / f"triggerer-{n}.log").read_text(errors="replace") for n in (1, 2)),
        timeout=120,
    )
    second = push(emulator, 100)
    time.sleep(8)  # more than a heartbeat on each side
    assert pulls() == pulled_before  # nothing pulled, so nothing deleted, dead-lettered or misrouted
    assert emulator.metrics("split-shop")["backlog_count"] == 100 and not journal(emulator, "drop")
    log = (airflow.home / "triggerer-1.log").read_text(errors="replace")
    assert "queues_enabled = True" in log and "--queues" in log and "split_orders" in log and "split_refunds" in log
    for n in (1, 2):
        airflow.terminate(f"triggerer-{n}")

    # 3. the pinned deployment: HA triggerers take deferred tasks (--queues), one takes every watcher
    airflow.env["AIRFLOW__TRIGGERER__QUEUES_ENABLED"] = "True"
    alive = running_triggerers(airflow)
    airflow.start_component("triggerer-tasks", ["triggerer", "--queues", "default", "--capacity", "1"])
    airflow.wait_for("the task triggerer's job", lambda: len(running_triggerers(airflow) - alive) == 1)
    (tasks_job,) = running_triggerers(airflow) - alive
    airflow.start_component("triggerer-watchers", ["triggerer"])
    airflow.wait_for(
        "both watchers on the watcher triggerer",
        lambda: (
            len(set(placement(airflow).values())) == 1
            and None not in placement(airflow).values()
            and tasks_job not in placement(airflow).values()
            and set(placement(airflow).values()) <= running_triggerers(airflow)
        ),
    )
    airflow.wait_for("the burst to reach its DAGs", lambda: len(routed(airflow)) >= 300)
    assert_routed(airflow, first | second)
    assert set(journal(emulator, "deliver").values()) == {1}
    assert not journal(emulator, "retry") and not journal(emulator, "drop") and not journal(emulator, "dead_letter")
    print(f"\nsplit: refused on both sides with {pulled_before} pulls before and none after; pinned: 300 routed once")

    assert leaks_in_files(airflow.home, TEST_TOKEN) == []
    assert leaks_in_db(airflow.home / "airflow.db", TEST_TOKEN) == []
