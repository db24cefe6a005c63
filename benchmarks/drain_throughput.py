"""
PullAndAck drain throughput with 50 ms of latency added to every pull and ack (a real network round
trip): at concurrency 1, 2, 4 and 8 in one task, and as 1, 2 and 4 mapped tasks (one process each,
as on separate Airflow workers), draining one queue: messages/s, against Cloudflare's 5,000
messages/s per queue. Target: >= 4,500 messages/s (90 %) at some concurrency. Draws
``docs/drain_throughput.png``.

The emulator runs in its own process; the drain is the PullAndAck operator's engine (``Drainer``)
with a no-op ``process``, batches of up to 100.

Run: ``.venv/bin/python benchmarks/drain_throughput.py [--messages 20000]``
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from common import Row, table

from airflow_provider_cfqueues.consume.drain import Drainer
from airflow_provider_cfqueues.consume.drain_plan import DrainPlan
from airflow_provider_cfqueues.emulator import EmulatorProcess
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

LATENCY = 0.05
SERVICE_LIMIT = 5_000
CONCURRENCY = (1, 2, 4, 8)
MAPPED = (1, 2, 4)
PLOT = Path(__file__).resolve().parent.parent / "docs" / "drain_throughput.png"


def measure(messages: int) -> dict[int, float]:
    queues = [f"drain-{c}" for c in CONCURRENCY]
    latency = [f"{endpoint}:latency={LATENCY}" for endpoint in ("pull", "ack")]
    with EmulatorProcess(queues, extra_args=[a for spec in latency for a in ("--fault", spec)]) as emulator:
        os.environ.update(emulator.airflow_connection_env("cfq_bench_drain"))
        rates = {}
        for concurrency, queue in zip(CONCURRENCY, queues, strict=True):
            CloudflareQueuesHook("cfq_bench_drain", queue=queue).push_messages(
                [{"n": n, "payload": "x" * 200} for n in range(messages)]
            )

            def make_hook(queue: str = queue) -> CloudflareQueuesHook:
                return CloudflareQueuesHook("cfq_bench_drain", queue=queue)

            plan = DrainPlan(batch_size=100, concurrency=concurrency, visibility_timeout=300)
            started = time.perf_counter()
            summary = Drainer(make_hook, queue, plan, lambda message: None, log=logging.getLogger("bench")).run()
            elapsed = time.perf_counter() - started
            assert summary.acked == messages, summary
            rates[concurrency] = messages / elapsed
    return rates


def drain_in_child(queue: str) -> None:
    """One mapped task: drain ``queue`` with one worker; report what it acked, and when it started and ended
    (wall clock: the processes' start-up, as a worker's, is not the drain's throughput)."""
    hook = CloudflareQueuesHook("cfq_bench_drain", queue=queue)
    plan = DrainPlan(batch_size=100, visibility_timeout=300)
    started = time.time()
    summary = Drainer(lambda: hook, queue, plan, lambda message: None, log=logging.getLogger("bench")).run()
    print(summary.acked, started, time.time())


def measure_mapped(messages: int) -> dict[int, float]:
    """``n`` processes, each one drain of the same queue, as ``.partial().expand()`` over ``n`` tasks."""
    queues = [f"mapped-{n}" for n in MAPPED]
    latency = [f"{endpoint}:latency={LATENCY}" for endpoint in ("pull", "ack")]
    with EmulatorProcess(queues, extra_args=[a for spec in latency for a in ("--fault", spec)]) as emulator:
        env = {**os.environ, **emulator.airflow_connection_env("cfq_bench_drain")}
        os.environ.update(emulator.airflow_connection_env("cfq_bench_drain"))
        rates = {}
        for tasks, queue in zip(MAPPED, queues, strict=True):
            CloudflareQueuesHook("cfq_bench_drain", queue=queue).push_messages(
                [{"n": n, "payload": "x" * 200} for n in range(messages)]
            )
            children = [
                subprocess.Popen(
                    [sys.executable, __file__, "--child", queue], env=env, stdout=subprocess.PIPE, text=True
                )
                for _ in range(tasks)
            ]
            reports = [child.communicate(timeout=600)[0].split()[-3:] for child in children]
            acked = sum(int(report[0]) for report in reports)
            span = max(float(report[2]) for report in reports) - min(float(report[1]) for report in reports)
            assert acked == messages, (acked, messages)
            rates[tasks] = messages / span
    return rates


def plot(rates: dict[int, float], mapped: dict[int, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4))
    axes.plot(list(rates), list(rates.values()), marker="o", label="threads in one task (concurrency)")
    axes.plot(list(mapped), list(mapped.values()), marker="s", label="mapped tasks, one process each")
    axes.axhline(SERVICE_LIMIT, color="grey", linestyle="--", label="Cloudflare limit: 5,000 msg/s per queue")
    axes.axhline(0.9 * SERVICE_LIMIT, color="orange", linestyle=":", label="target: 4,500 msg/s")
    axes.set_xscale("log", base=2)
    axes.set_xticks(list(rates), [str(c) for c in rates])
    axes.set_xlabel("pullers")
    axes.set_ylabel("messages / s")
    axes.set_title(f"Drain throughput, {int(LATENCY * 1000)} ms latency per request")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(PLOT, dpi=110)


def rows(messages: int = 20_000) -> list[Row]:
    rates = measure(messages)
    mapped = measure_mapped(messages)
    plot(rates, mapped)
    return [
        Row(
            "drain throughput, 50 ms latency",
            f"concurrency {c}",
            f"{rate:,.0f} msg/s",
            "5,000 msg/s (service)",
            rate / SERVICE_LIMIT,
            "target >= 0.90" if c == max(rates, key=rates.get) else "",
        )  # type: ignore[arg-type]
        for c, rate in rates.items()
    ] + [
        Row(
            "drain throughput, 50 ms latency",
            f"{n} mapped task(s)",
            f"{rate:,.0f} msg/s",
            f"{rates[1]:,.0f} msg/s (1 task, concurrency 1)",
            rate / rates[1],
        )
        for n, rate in mapped.items()
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--child", metavar="QUEUE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        drain_in_child(args.child)
    else:
        print(table(rows(args.messages)))
        print(f"plot: {PLOT}")
