"""
What an idle queue costs under the message trigger (every pull is a billable operation, empty or
not): pulls per hour with the default backoff (5 s, doubling to ``max_poll_interval`` 60 s) against
polling every 5 s. Time is compressed 100x (intervals of 50 ms to 600 ms, 36 s for an hour): the
counts are the trigger's own, against the emulator. Each side runs in its own process (a trigger
loads Airflow's trigger machinery, which the other benchmarks of ``run_all`` should not share).

Run: ``.venv/bin/python benchmarks/idle_trigger.py [--speedup 100]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys

from common import Row, table

HOUR = 3_600.0


def pulls_per_hour(poll_interval: float, max_poll_interval: float, speedup: float) -> int:
    from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
    from airflow_provider_cfqueues.triggers.queues import CloudflareQueuesMessageTrigger

    with CloudflareQueuesEmulator() as emulator:
        emulator.create_queue("idle")
        os.environ.update(emulator.airflow_connection_env("cfq_bench_idle"))
        trigger = CloudflareQueuesMessageTrigger(
            cloudflare_queue="idle",
            cloudflare_queues_conn_id="cfq_bench_idle",
            poll_interval=poll_interval / speedup,
            max_poll_interval=max_poll_interval / speedup,
        )

        async def idle_hour() -> None:
            async def drive() -> None:
                async for _ in trigger.run():
                    return

            task = asyncio.create_task(drive())
            await asyncio.sleep(HOUR / speedup)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        asyncio.run(idle_hour())
        return emulator.app.requests["pull"]


def _in_child(max_poll_interval: float, speedup: float) -> int:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(max_poll_interval), "--speedup", str(speedup)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    return int(out.split()[-1])


def rows(speedup: float = 100.0) -> list[Row]:
    backed_off = _in_child(60, speedup)
    fixed = _in_child(5, speedup)
    return [
        Row(
            "idle message trigger",
            "pulls per hour on an empty queue",
            f"{backed_off:,} (5 s doubling to 60 s)",
            f"{fixed:,} (every 5 s)",
            backed_off / fixed,
            f"per idle day: {backed_off * 24:,} against {fixed * 24:,}; time compressed {speedup:g}x",
        )
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--speedup", type=float, default=100.0)
    parser.add_argument("--child", type=float, metavar="MAX_POLL_INTERVAL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(pulls_per_hour(5, args.child, args.speedup))
    else:
        print(table(rows(args.speedup)))
