"""
Triggerer scale: 1,000 backlog triggers in one event loop polling the emulator, against the same
polls done by 1,000 sync sensors (``poke``) in threads. Reports CPU seconds per poll and the peak
memory each side adds, as ratios (triggers / threads). Each side runs in its own process; the
emulator in a third.

Run: ``.venv/bin/python benchmarks/triggerer_scale.py [--count 1000] [--seconds 15]``
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


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(mode: str, count: int, seconds: float, queue_id: str) -> dict[str, float]:
    """Run ``count`` pollers for ``seconds``; return polls, CPU seconds and memory added."""
    from airflow_provider_cfqueues.api.backlog import BacklogCriteria
    from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook
    from airflow_provider_cfqueues.sensors.queues import CloudflareQueuesBacklogSensor
    from airflow_provider_cfqueues.triggers.queues import CloudflareQueuesBacklogTrigger

    polls = 0
    rss_before = _kib("VmRSS")
    criteria = BacklogCriteria.build(min_backlog=10**9)  # never met: poll for the whole window
    if mode == "triggers":
        original = CloudflareQueuesHook.aget_metrics

        async def counted(self: CloudflareQueuesHook, queue: str | None = None) -> object:
            nonlocal polls
            polls += 1
            return await original(self, queue)

        CloudflareQueuesHook.aget_metrics = counted  # type: ignore[method-assign]

        async def run_all() -> float:
            triggers = [
                CloudflareQueuesBacklogTrigger(
                    cloudflare_queue=queue_id, criteria=criteria.to_dict(), poll_interval=1.0
                )
                for _ in range(count)
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
    else:
        stop = threading.Event()
        lock = threading.Lock()

        def poke_loop() -> None:
            nonlocal polls
            sensor = CloudflareQueuesBacklogSensor(task_id="s", queue=queue_id, min_backlog=10**9)
            while not stop.is_set():
                sensor.poke({})  # type: ignore[arg-type]
                with lock:
                    polls += 1
                stop.wait(1.0)

        cpu = _cpu()
        threads = [threading.Thread(target=poke_loop, daemon=True) for _ in range(count)]
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        cpu_used = _cpu() - cpu
    return {"polls": polls, "cpu": cpu_used, "memory_mib": (_kib("VmHWM") - rss_before) / 1024}


def rows(count: int = 1_000, seconds: float = 15.0) -> list[Row]:
    from airflow_provider_cfqueues.emulator import EmulatorProcess

    results = {}
    with EmulatorProcess(["scale"]) as emulator:
        env = {**os.environ, **emulator.airflow_connection_env()}
        for mode in ("threads", "triggers"):
            out = subprocess.run(
                [
                    sys.executable,
                    str(HERE / "triggerer_scale.py"),
                    "--child",
                    mode,
                    "--count",
                    str(count),
                    "--seconds",
                    str(seconds),
                    "--queue-id",
                    emulator.queue_ids["scale"],
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=True,
            ).stdout
            results[mode] = json.loads(out.strip().splitlines()[-1])
    threads, triggers = results["threads"], results["triggers"]
    per_poll = {m: results[m]["cpu"] / max(1, results[m]["polls"]) * 1000 for m in results}
    return [
        Row(
            "triggerer scale",
            f"{count:,} pollers: CPU per poll",
            f"{per_poll['triggers']:.2f} ms (triggers)",
            f"{per_poll['threads']:.2f} ms (sensor threads)",
            per_poll["triggers"] / per_poll["threads"],
            f"{triggers['polls']:,} vs {threads['polls']:,} polls in {seconds:.0f} s",
        ),
        Row(
            "triggerer scale",
            f"{count:,} pollers: peak memory added",
            f"{triggers['memory_mib']:.0f} MiB (triggers)",
            f"{threads['memory_mib']:.0f} MiB (sensor threads)",
            triggers["memory_mib"] / threads["memory_mib"],
        ),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--count", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--child", choices=("triggers", "threads"))
    parser.add_argument("--queue-id")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.count, args.seconds, args.queue_id)))
    else:
        print(table(rows(args.count, args.seconds)))
