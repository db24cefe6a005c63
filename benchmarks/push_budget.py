"""
Pushing under Cloudflare's API budget, modelled by the emulator (``rate_limit``): 1,200 requests per
5 minutes per token, pushes counted, a token that goes over blocked for a whole window.

* 100,000 messages under the service's own ``1200/300``: 1,000 batch requests, inside the budget.
* The same rate over a 10x shorter window (``120/30``) with 20,000 messages: 200 requests, more than
  the quota, so the push has to wait for the window; it paces itself from the ``Ratelimit`` headers.

Each reports messages/s beside the most the budget allows for that many requests (a window's quota
at once, the next quota one window later; 4 requests/s x 100 messages = 400 messages/s in the long
run), and the requests the service refused (target: none beyond the requests in flight; one pusher
here, so none).

Run: ``.venv/bin/python benchmarks/push_budget.py``
"""

from __future__ import annotations

import math
import os
import time

from common import Row, table


def measure(budget: str, messages: int) -> dict[str, float]:
    from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
    from airflow_provider_cfqueues.emulator.ratelimit import parse_budget
    from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

    quota, window = parse_budget(budget)
    with CloudflareQueuesEmulator(rate_limit=budget) as emulator:
        queue = emulator.create_queue("budget")
        os.environ.update(emulator.airflow_connection_env("cfq_bench_budget"))
        hook = CloudflareQueuesHook("cfq_bench_budget", queue=queue.id)
        started = time.perf_counter()
        result = hook.push_messages([{"n": n} for n in range(messages)])
        elapsed = time.perf_counter() - started
        assert emulator.metrics("budget")["backlog_count"] == messages
        assert emulator.app.budget is not None
        refused = emulator.app.budget.refused
        hook.close()
    # the fastest the budget allows: a window's quota at once, the next quota a window later
    best = (math.ceil(result.requests / quota) - 1) * window
    return {
        "requests": result.requests,
        "seconds": elapsed,
        "rate": messages / elapsed,
        "best_rate": messages / best if best else float("inf"),
        "refused": refused,
    }


def rows() -> list[Row]:
    out = []
    for budget, messages in (("1200/300", 100_000), ("120/30", 20_000)):
        m = measure(budget, messages)
        bound = "no wait needed" if m["best_rate"] == float("inf") else f"{m['best_rate']:,.0f} msg/s (budget bound)"
        out.append(
            Row(
                "push under the API budget",
                f"{messages:,} messages, budget {budget} ({m['requests']:,} requests)",
                f"{m['rate']:,.0f} msg/s in {m['seconds']:.1f} s",
                bound,
                None if m["best_rate"] == float("inf") else m["rate"] / m["best_rate"],
                f"refused (429): {m['refused']}; long run at 4 requests/s x 100 = 400 msg/s",
            )
        )
    return out


if __name__ == "__main__":
    print(table(rows()))
