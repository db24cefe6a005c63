"""
PullAndAck drain throughput with 50 ms of latency added to every pull and ack (a real network round
trip), at concurrency 1, 2, 4 and 8: messages/s, against Cloudflare's 5,000 messages/s per queue.
Target: >= 4,500 messages/s (90 %) at some concurrency. Draws ``docs/drain_throughput.png``.

The emulator runs in its own process; the drain is the PullAndAck operator's engine (``Drainer``)
with a no-op ``process``, batches of 100.

Run: ``.venv/bin/python benchmarks/drain_throughput.py [--messages 20000]``
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

from common import Row, table

from airflow_provider_cfqueues.emulator import EmulatorProcess
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook
from airflow_provider_cfqueues.operators.drain import Drainer
from airflow_provider_cfqueues.operators.drain_plan import DrainPlan

LATENCY = 0.05
SERVICE_LIMIT = 5_000
CONCURRENCY = (1, 2, 4, 8)
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


def plot(rates: dict[int, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4))
    axes.plot(list(rates), list(rates.values()), marker="o", label="PullAndAck drain (batches of 100)")
    axes.axhline(SERVICE_LIMIT, color="grey", linestyle="--", label="Cloudflare limit: 5,000 msg/s per queue")
    axes.axhline(0.9 * SERVICE_LIMIT, color="orange", linestyle=":", label="target: 4,500 msg/s")
    axes.set_xscale("log", base=2)
    axes.set_xticks(list(rates), [str(c) for c in rates])
    axes.set_xlabel("concurrency (pullers in one task)")
    axes.set_ylabel("messages / s")
    axes.set_title(f"Drain throughput, {int(LATENCY * 1000)} ms latency per request")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(PLOT, dpi=110)


def rows(messages: int = 20_000) -> list[Row]:
    rates = measure(messages)
    plot(rates)
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
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--messages", type=int, default=20_000)
    print(table(rows(parser.parse_args().messages)))
    print(f"plot: {PLOT}")
