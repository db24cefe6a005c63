"""
Requests per message for push, pull and ack of 10,000 messages of mixed sizes, against the theoretical
minimum (100 messages per request, 256 KB per push batch). The ratio must be 1.00.

Run: ``.venv/bin/python benchmarks/requests_per_message.py``
"""

from __future__ import annotations

import math
import os
import random

from common import Row, table

from airflow_provider_cfqueues.api.push_packing import batch_capacity, min_batches, prepare_messages
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

N = 10_000


def mixed_bodies(n: int, seed: int = 7) -> list[object]:
    """Log-normal sizes (median ~1.5 KB, a tail up to 100 KB), half text and half JSON, some multi-byte."""
    rng = random.Random(seed)
    bodies: list[object] = []
    for i in range(n):
        size = int(min(100_000, rng.lognormvariate(7.3, 1.0)))
        text = "é✓" * (size // 20) + "x" * (size - 2 * (size // 20))
        bodies.append(text if i % 2 else {"n": i, "payload": text})
    return bodies


def rows() -> list[Row]:
    bodies = mixed_bodies(N)
    with CloudflareQueuesEmulator() as emulator:
        emulator.create_queue("bench", visibility_timeout_ms=600_000)
        os.environ.update(emulator.airflow_connection_env("cfq_bench_requests"))
        hook = CloudflareQueuesHook("cfq_bench_requests", queue="bench")
        hook.push_messages(bodies)
        pulled = []
        while len(pulled) < N:
            pulled.extend(hook.pull_messages(batch_size=100).messages)
        hook.ack_messages(acks=pulled)
        counts = dict(emulator.app.requests)
        assert emulator.metrics("bench")["backlog_count"] == 0
    prepared = prepare_messages(bodies)
    minimum = {
        "push": min_batches([len(m.wire) + 1 for m in prepared], batch_capacity(None)),
        "pull": math.ceil(N / 100),
        "ack": math.ceil(N / 100),
    }
    measured = {
        "push": counts.get("push_batch", 0) + counts.get("push", 0),
        "pull": counts["pull"],
        "ack": counts["ack"],
    }
    mb = sum(m.body_bytes for m in prepared) / 1e6
    return [
        Row(
            "requests per message",
            f"{op} {N:,} mixed messages ({mb:.1f} MB)",
            f"{measured[op]} requests",
            f"{minimum[op]} minimum",
            measured[op] / minimum[op],
        )
        for op in ("push", "pull", "ack")
    ]


if __name__ == "__main__":
    print(table(rows()))
