"""
The event path, end to end: a real DAG processor, triggerer, scheduler (LocalExecutor) and API server
on a temporary AIRFLOW_HOME, the emulator on loopback, and ``W`` asset watchers of one queue (each DAG
takes the messages whose ``w`` is its number). For W = 1, 10 and 50:

* latency from the push to the asset event stored, and to the DAG's task start (p50 / p95), beside
  Airflow's own floor measured in the same run: an asset watcher without the provider
  (``FileDeleteTrigger`` on a file the benchmark creates, polled as often as the queue);
* triggerer CPU per 1,000 messages (the triggerer and its runner process, while 1,000 messages spread
  over the watchers are routed and acked);
* the queue's pull rate while idle and during the burst: one loop, whatever the number of watchers.

Run: ``.venv/bin/python benchmarks/event_path.py [--watchers 1 10 50] [--samples 12]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

from common import Row, table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

POLL = 0.2  # seconds between pulls of the queue and pokes of the floor's file, while idle at most 0.5 s

DAGS = """
from datetime import datetime

from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
from airflow.providers.standard.triggers.file import FileDeleteTrigger
from airflow.sdk import DAG, Asset, AssetWatcher, task


def bench_dag(dag_id, asset):
    with DAG(dag_id, schedule=[asset], start_date=datetime(2026, 1, 1), catchup=False, max_active_runs=64) as dag:
        @task
        def start():
            pass

        start()
    return dag


for w in range({watchers}):
    trigger = MessageQueueTrigger(
        scheme="cloudflare+queues", cloudflare_queue="bench", poll_interval={poll}, max_poll_interval=0.5,
        message_filter={{"field": "w", "equals": w}},
    )
    asset = Asset(f"bench_{{w}}", watchers=[AssetWatcher(name=f"bench_{{w}}", trigger=trigger)])
    globals()[f"dag_{{w}}"] = bench_dag(f"bench_{{w}}", asset)

floor_trigger = FileDeleteTrigger(filepath={path!r}, poke_interval={poll})
floor = Asset("floor", watchers=[AssetWatcher(name="floor", trigger=floor_trigger)])
floor_dag = bench_dag("floor", floor)
"""


def _cpu_of_group(pgid: int) -> float:
    """CPU seconds of every process in a process group (the triggerer and its runner subprocess)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 of stat: the process group
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _when(text: object) -> float:
    """A timestamp of the metadata DB (UTC, with or without its offset) as epoch seconds."""
    moment = datetime.fromisoformat(str(text).replace(" ", "T"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def measure(watchers: int, samples: int) -> dict[str, float]:
    from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
    from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook
    from tests.e2e.test_airflow_components import Airflow

    home = Path(tempfile.mkdtemp(prefix=f"cfq-bench-events-{watchers}-"))
    dags, floor_file = home / "dags", home / "floor.flag"
    dags.mkdir()
    (dags / "bench_dags.py").write_text(
        textwrap.dedent(DAGS.format(watchers=watchers, poll=POLL, path=str(floor_file)))
    )
    with CloudflareQueuesEmulator(token="bench-token-events", record_events=True) as emulator:
        emulator.create_queue("bench")
        queue_id = emulator.queue("bench").queue_id
        for name, value in emulator.airflow_connection_env().items():
            os.environ[name] = value
        airflow = Airflow(home, emulator)
        airflow.env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
        airflow.env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
        airflow.env["AIRFLOW__TRIGGERER__DEFAULT_CAPACITY"] = "1000"
        try:
            airflow.start()
            airflow.wait_for(
                "every watcher on the triggerer",
                lambda: (
                    airflow.query("SELECT COUNT(*) FROM trigger WHERE triggerer_id IS NOT NULL")[0][0] >= watchers + 1
                ),
                timeout=300,
            )
            airflow.wait_for("the loop to poll", lambda: emulator.app.queue_requests["pull", queue_id] > 0)
            hook = CloudflareQueuesHook(queue="bench")
            provider, floor = [], []
            for n in range(samples + 1):  # the first of each is a warm-up (first runs, first imports)
                pushed = time.time()
                hook.push_messages([{"w": 0, "n": n}])
                provider.append(_sample(airflow, "bench_0", n, pushed))
                created = time.time()
                floor_file.write_text("x")
                floor.append(_sample(airflow, "floor", n, created))
            del provider[0], floor[0]
            idle_before = emulator.app.queue_requests["pull", queue_id]
            time.sleep(10)
            idle_pulls = (emulator.app.queue_requests["pull", queue_id] - idle_before) / 10
            triggerer = airflow.processes["triggerer"].pid
            cpu_before = _cpu_of_group(triggerer)
            pulls_before = emulator.app.queue_requests["pull", queue_id]
            acked_before = sum(len(e.message_ids) for e in emulator.events if e.kind == "ack")
            started = time.monotonic()
            hook.push_messages([{"w": n % watchers, "n": n} for n in range(1_000)])
            airflow.wait_for(
                "1,000 messages routed and acked",
                lambda: sum(len(e.message_ids) for e in emulator.events if e.kind == "ack") - acked_before >= 1_000,
                timeout=300,
                every=0.2,
            )
            burst_seconds = time.monotonic() - started
            cpu = _cpu_of_group(triggerer) - cpu_before
            burst_pulls = emulator.app.queue_requests["pull", queue_id] - pulls_before
        finally:
            airflow.stop()
    stored, started_task = zip(*provider, strict=True)
    floor_stored, floor_started = zip(*floor, strict=True)
    return {
        "stored_p50": _percentiles(list(stored))[0],
        "stored_p95": _percentiles(list(stored))[1],
        "task_p50": _percentiles(list(started_task))[0],
        "task_p95": _percentiles(list(started_task))[1],
        "floor_stored_p50": _percentiles(list(floor_stored))[0],
        "floor_stored_p95": _percentiles(list(floor_stored))[1],
        "floor_task_p50": _percentiles(list(floor_started))[0],
        "floor_task_p95": _percentiles(list(floor_started))[1],
        "cpu_per_1000": cpu,
        "idle_pulls_per_s": idle_pulls,
        "burst_pulls": burst_pulls,
        "burst_seconds": burst_seconds,
    }


def _sample(airflow: object, asset: str, n: int, at: float) -> tuple[float, float]:
    """Seconds from ``at`` to the ``n``-th asset event of ``asset`` stored, and to its run's task start."""
    query = airflow.query  # type: ignore[attr-defined]
    event_sql = (
        "SELECT e.id, e.timestamp FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.name = ? "
        "ORDER BY e.id LIMIT 1 OFFSET ?"
    )
    airflow.wait_for(f"event {n} of {asset}", lambda: bool(query(event_sql, asset, n)), every=0.05)  # type: ignore[attr-defined]
    ((event_id, stored),) = query(event_sql, asset, n)
    task_sql = (
        "SELECT ti.start_date FROM task_instance ti JOIN dag_run r ON r.dag_id = ti.dag_id AND r.run_id = ti.run_id "
        "JOIN dagrun_asset_event x ON x.dag_run_id = r.id WHERE x.event_id = ? AND ti.start_date IS NOT NULL"
    )
    airflow.wait_for(f"the task of event {n} of {asset}", lambda: bool(query(task_sql, event_id)), every=0.05)  # type: ignore[attr-defined]
    ((task_started,),) = query(task_sql, event_id)
    return _when(stored) - at, _when(task_started) - at


def rows(watcher_counts: tuple[int, ...] = (1, 10, 50), samples: int = 12) -> list[Row]:
    results = []
    for watchers in watcher_counts:
        m = measure(watchers, samples)
        case = f"{watchers} watcher(s) of one queue"
        results += [
            Row(
                "event path",
                f"{case}: push -> asset event stored, p50 / p95",
                f"{m['stored_p50']:.2f} / {m['stored_p95']:.2f} s",
                f"{m['floor_stored_p50']:.2f} / {m['floor_stored_p95']:.2f} s",
                m["stored_p50"] / m["floor_stored_p50"],
                "baseline: Airflow's FileDeleteTrigger watcher, same poll interval, same run",
            ),
            Row(
                "event path",
                f"{case}: push -> task start, p50 / p95",
                f"{m['task_p50']:.2f} / {m['task_p95']:.2f} s",
                f"{m['floor_task_p50']:.2f} / {m['floor_task_p95']:.2f} s",
                m["task_p50"] / m["floor_task_p50"],
                "the scheduler's part is the same on both sides",
            ),
            Row(
                "event path",
                f"{case}: triggerer CPU per 1,000 messages",
                f"{m['cpu_per_1000']:.2f} s",
                "",
                None,
                f"routed and acked in {m['burst_seconds']:.1f} s with {m['burst_pulls']} pulls",
            ),
            Row(
                "event path",
                f"{case}: pulls per second, idle",
                f"{m['idle_pulls_per_s']:.1f}",
                f"{1 / 0.5:.1f}",
                m["idle_pulls_per_s"] / 2.0,
                "baseline: one loop at max_poll_interval 0.5 s",
            ),
        ]
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--watchers", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--samples", type=int, default=12)
    args = parser.parse_args()
    print(table(rows(tuple(args.watchers), args.samples)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
