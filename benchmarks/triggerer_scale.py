"""
Triggerer scale: 1,000 deferred backlog sensors on 20 queues, polling every 30 s, for one minute, in
one event loop as on a triggerer. Coalesced (the triggers of a queue share one metrics poll per
interval, as shipped) against uncoalesced (each trigger polls on its own, as before) and against
1,000 sync sensors poking in threads: API requests per minute (Cloudflare's budget is 1,200 per 5
minutes per token: 240 per minute), CPU seconds and peak memory added. Each side runs in its own
process; the emulator in another.

Run: ``.venv/bin/python benchmarks/triggerer_scale.py [--count 1000] [--queues 20] [--interval 30] [--seconds 60]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import Row, table

HERE = Path(__file__).resolve().parent
BUDGET_PER_MINUTE = 1_200 / 5


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(mode: str, count: int, interval: float, seconds: float, queue_ids: list[str]) -> dict[str, float]:
    """Run ``count`` pollers over ``queue_ids`` for ``seconds``; return requests, CPU seconds, memory added."""
    from airflow_provider_cfqueues.api.backlog import BacklogCriteria
    from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook
    from airflow_provider_cfqueues.sensors.queues import CloudflareQueuesBacklogSensor
    from airflow_provider_cfqueues.triggers.queues import CloudflareQueuesBacklogTrigger
    from airflow_provider_cfqueues.triggers.shared_metrics import SharedMetrics

    requests = 0
    rss_before = _kib("VmRSS")
    criteria = BacklogCriteria.build(min_backlog=10**9)  # never met: poll for the whole window
    if mode == "threads":
        stop = threading.Event()
        lock = threading.Lock()

        def poke_loop(queue_id: str) -> None:
            nonlocal requests
            sensor = CloudflareQueuesBacklogSensor(task_id="s", cloudflare_queue=queue_id, min_backlog=10**9)
            while not stop.is_set():
                sensor.poke({})  # type: ignore[arg-type]
                with lock:
                    requests += 1
                stop.wait(interval)

        cpu = _cpu()
        threads = [
            threading.Thread(target=poke_loop, args=(queue_ids[n % len(queue_ids)],), daemon=True) for n in range(count)
        ]
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        return {"requests": requests, "cpu": _cpu() - cpu, "memory_mib": (_kib("VmHWM") - rss_before) / 1024}

    original = CloudflareQueuesHook.aget_metrics

    async def counted(self: CloudflareQueuesHook, queue: str | None = None) -> object:
        nonlocal requests
        requests += 1
        return await original(self, queue)

    CloudflareQueuesHook.aget_metrics = counted  # type: ignore[method-assign]
    if mode == "uncoalesced":  # every trigger its own poller, as before triggers shared them
        SharedMetrics.acquire = classmethod(  # type: ignore[method-assign, assignment]
            lambda cls, conn_id, account_id, queue: _own(cls, conn_id, account_id, queue)
        )

    async def run_all() -> float:
        triggers = [
            CloudflareQueuesBacklogTrigger(
                cloudflare_queue=queue_ids[n % len(queue_ids)], criteria=criteria.to_dict(), poll_interval=interval
            )
            for n in range(count)
        ]

        async def drive(trigger: CloudflareQueuesBacklogTrigger) -> None:
            async for _ in trigger.run():
                return

        cpu = _cpu()
        tasks = [asyncio.create_task(drive(t)) for t in triggers]
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return _cpu() - cpu

    cpu_used = asyncio.run(run_all())
    return {"requests": requests, "cpu": cpu_used, "memory_mib": (_kib("VmHWM") - rss_before) / 1024}


def _own(cls: type, conn_id: str, account_id: str | None, queue: str | None) -> object:
    from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

    shared = cls((0, conn_id, account_id or "", queue or ""), CloudflareQueuesHook(conn_id, queue=queue))
    shared.users += 1
    return shared


def rows(count: int = 1_000, queues: int = 20, interval: float = 30.0, seconds: float = 60.0) -> list[Row]:
    from airflow_provider_cfqueues.emulator import EmulatorProcess

    names = [f"scale-{n:02d}" for n in range(queues)]
    results = {}
    with EmulatorProcess(names) as emulator:
        env = {**os.environ, **emulator.airflow_connection_env()}
        ids = ",".join(emulator.queue_ids[name] for name in names)
        for mode in ("threads", "uncoalesced", "coalesced"):
            out = subprocess.run(
                [
                    sys.executable,
                    str(HERE / "triggerer_scale.py"),
                    *("--child", mode, "--count", str(count), "--interval", str(interval)),
                    *("--seconds", str(seconds), "--queue-ids", ids),
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=True,
            ).stdout
            results[mode] = json.loads(out.strip().splitlines()[-1])
    per_minute = {mode: result["requests"] * 60 / seconds for mode, result in results.items()}
    coalesced, uncoalesced, threads = results["coalesced"], results["uncoalesced"], results["threads"]
    case = f"{count:,} sensors, {queues} queues, {interval:g} s interval"
    return [
        Row(
            "triggerer scale",
            f"{case}: API requests per minute",
            f"{per_minute['coalesced']:,.0f} (coalesced)",
            f"{per_minute['uncoalesced']:,.0f} (uncoalesced)",
            per_minute["coalesced"] / per_minute["uncoalesced"],
            f"budget {BUDGET_PER_MINUTE:.0f}/min; target <= {queues * 60 / interval:.0f} (one per queue per interval)",
        ),
        Row(
            "triggerer scale",
            f"{case}: CPU seconds per minute",
            f"{coalesced['cpu'] * 60 / seconds:.2f} s (coalesced)",
            f"{uncoalesced['cpu'] * 60 / seconds:.2f} s (uncoalesced)",
            coalesced["cpu"] / max(uncoalesced["cpu"], 1e-9),
            f"sensor threads: {threads['cpu'] * 60 / seconds:.2f} s, {per_minute['threads']:,.0f} requests/min",
        ),
        Row(
            "triggerer scale",
            f"{case}: peak memory added",
            f"{coalesced['memory_mib']:.0f} MiB (coalesced)",
            f"{uncoalesced['memory_mib']:.0f} MiB (uncoalesced)",
            coalesced["memory_mib"] / max(uncoalesced["memory_mib"], 1e-9),
            f"sensor threads: {threads['memory_mib']:.0f} MiB",
        ),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--count", type=int, default=1_000)
    parser.add_argument("--queues", type=int, default=20)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--child", choices=("threads", "uncoalesced", "coalesced"))
    parser.add_argument("--queue-ids")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.count, args.interval, args.seconds, args.queue_ids.split(","))))
    else:
        print(table(rows(args.count, args.queues, args.interval, args.seconds)))
