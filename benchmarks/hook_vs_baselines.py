"""
Hook throughput against two baselines, measured side by side in one run against one emulator process:

* ``bare``: a ``requests.Session`` loop sending the same requests (pre-serialized JSON, ``resp.json()``,
  lease ids picked out by hand) — the floor for any Python client over ``requests``;
* ``sdk``: the official ``cloudflare`` SDK (``bulk_push``, ``pull``, ``ack``).

For each client: push N messages in batches of 100, pull them 100 at a time, ack them 100 at a time;
messages/s per phase, the median of ``--repeats`` rounds (at least 5; clients take turns within each
round, and each client's round starts from a collected heap, so that a full garbage collection of
the other client's leftovers does not land in its timing). The target: the hook within 10 % of the
bare loop, and no slower than the SDK.

The combined case measures the client's own CPU (``time.process_time``: the emulator runs in another
process) for push → pull → ack of small messages, hook against the bare loop, with the hook's logging
on at INFO (as in a task), over ``CPU_ROUNDS`` rounds each (clients take turns); target: the median
round at most 1.15x the bare loop's median, full garbage collections included (the best round is
reported too).

Run: ``.venv/bin/python benchmarks/hook_vs_baselines.py [--messages 10000] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import cloudflare
import requests
from common import Row, table

from airflow_provider_cfqueues.emulator import EmulatorProcess
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

PHASES = ("push", "pull", "ack")


def bodies(n: int) -> list[dict[str, Any]]:
    return [{"order_id": i, "sku": f"SKU-{i % 997:04d}", "qty": i % 7 + 1, "note": "x" * (i % 200)} for i in range(n)]


def run_bare(emulator: EmulatorProcess, queue_id: str, messages: list[dict[str, Any]]) -> dict[str, float]:
    base = f"{emulator.base_url}/accounts/{emulator.account_id}/queues/{queue_id}"
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {emulator.token}", "Content-Type": "application/json"})
    timings: dict[str, float] = {}
    started = time.perf_counter()
    for start in range(0, len(messages), 100):
        payload = {"messages": [{"body": b, "content_type": "json"} for b in messages[start : start + 100]]}
        session.post(f"{base}/messages/batch", data=json.dumps(payload)).raise_for_status()
    timings["push"] = time.perf_counter() - started
    pulled: list[dict[str, Any]] = []  # every client keeps the pulled messages until it acks them
    started = time.perf_counter()
    while len(pulled) < len(messages):
        answer = session.post(f"{base}/messages/pull", data='{"batch_size":100,"visibility_timeout_ms":600000}')
        answer.raise_for_status()
        pulled.extend(answer.json()["result"]["messages"])
    timings["pull"] = time.perf_counter() - started
    started = time.perf_counter()
    leases = [m["lease_id"] for m in pulled]
    for start in range(0, len(leases), 100):
        payload = {"acks": [{"lease_id": lease} for lease in leases[start : start + 100]], "retries": []}
        session.post(f"{base}/messages/ack", data=json.dumps(payload)).raise_for_status()
    timings["ack"] = time.perf_counter() - started
    return timings


def small_bodies(n: int) -> list[dict[str, Any]]:
    return [{"n": i} for i in range(n)]


def cpu_of(run: Callable[[EmulatorProcess, str, list[dict[str, Any]]], dict[str, float]]) -> Callable[..., float]:
    """The client CPU seconds one push -> pull -> ack round costs."""

    def measured(emulator: EmulatorProcess, queue_id: str, messages: list[dict[str, Any]]) -> float:
        started = time.process_time()
        run(emulator, queue_id, messages)
        return time.process_time() - started

    return measured


def run_hook(emulator: EmulatorProcess, queue_id: str, messages: list[dict[str, Any]]) -> dict[str, float]:
    hook = CloudflareQueuesHook("cfq_bench", queue=queue_id)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    hook.push_messages(messages)
    timings["push"] = time.perf_counter() - started
    pulled = []
    started = time.perf_counter()
    while len(pulled) < len(messages):
        pulled.extend(hook.pull_messages(batch_size=100, visibility_timeout=600).messages)
    timings["pull"] = time.perf_counter() - started
    started = time.perf_counter()
    hook.ack_messages(acks=pulled)
    timings["ack"] = time.perf_counter() - started
    hook.close()
    return timings


def run_sdk(emulator: EmulatorProcess, queue_id: str, messages: list[dict[str, Any]]) -> dict[str, float]:
    client = cloudflare.Cloudflare(api_token=emulator.token, base_url=emulator.base_url, max_retries=0)
    account = emulator.account_id
    timings: dict[str, float] = {}
    started = time.perf_counter()
    for start in range(0, len(messages), 100):
        batch = [{"body": b, "content_type": "json"} for b in messages[start : start + 100]]
        client.queues.messages.bulk_push(queue_id, account_id=account, messages=batch)  # type: ignore[misc]
    timings["push"] = time.perf_counter() - started
    pulled: list[Any] = []
    started = time.perf_counter()
    while len(pulled) < len(messages):
        answer = client.queues.messages.pull(
            queue_id, account_id=account, batch_size=100, visibility_timeout_ms=600_000
        )
        assert answer is not None
        pulled.extend(answer.messages)
    timings["pull"] = time.perf_counter() - started
    started = time.perf_counter()
    leases = [m.lease_id for m in pulled if m.lease_id]
    for start in range(0, len(leases), 100):
        client.queues.messages.ack(
            queue_id, account_id=account, acks=[{"lease_id": x} for x in leases[start : start + 100]]
        )
    timings["ack"] = time.perf_counter() - started
    client.close()
    return timings


CLIENTS: dict[str, Callable[[EmulatorProcess, str, list[dict[str, Any]]], dict[str, float]]] = {
    "bare": run_bare,
    "hook": run_hook,
    "sdk": run_sdk,
}


def measure(n: int, repeats: int) -> dict[str, dict[str, float]]:
    """messages/s per client and phase: the median of ``repeats`` rounds."""
    messages = bodies(n)
    rates: dict[str, dict[str, list[float]]] = {c: {p: [] for p in PHASES} for c in CLIENTS}
    names = [f"{client}-{r}" for r in range(repeats) for client in CLIENTS]
    with EmulatorProcess(names) as emulator:
        os.environ.update(emulator.airflow_connection_env("cfq_bench"))
        for r in range(repeats):
            order = list(CLIENTS) if r % 2 == 0 else list(reversed(CLIENTS))
            for client in order:
                gc.collect()  # the previous client's pulled messages are garbage now: not in this timing
                timings = CLIENTS[client](emulator, emulator.queue_ids[f"{client}-{r}"], messages)
                for phase in PHASES:
                    rates[client][phase].append(n / timings[phase])
    return {c: {p: statistics.median(rates[c][p]) for p in PHASES} for c in CLIENTS}


def measure_cpu(n: int, repeats: int) -> dict[str, list[float]]:
    """Client CPU seconds of push -> pull -> ack of ``n`` small messages, per round (``repeats`` rounds)."""
    messages = small_bodies(n)
    clients = {"bare": cpu_of(run_bare), "hook": cpu_of(run_hook)}
    seconds: dict[str, list[float]] = {client: [] for client in clients}
    names = [f"cpu-{client}-{r}" for r in range(repeats) for client in clients]
    logger = logging.getLogger("airflow.task")
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - closed below
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)  # the hook logs as in a task: every push and ack summary is formatted
    try:
        with EmulatorProcess(names) as emulator:
            os.environ.update(emulator.airflow_connection_env("cfq_bench"))
            for r in range(repeats):
                order = list(clients) if r % 2 == 0 else list(reversed(clients))
                for client in order:
                    queue_id = emulator.queue_ids[f"cpu-{client}-{r}"]
                    seconds[client].append(clients[client](emulator, queue_id, messages))
    finally:
        logger.removeHandler(handler)
        handler.stream.close()
    return seconds


#: rounds of the client-CPU case: enough for a stable median (a full garbage collection lands in some)
CPU_ROUNDS = 15


#: rounds of the throughput case, at least: the median of fewer moves with the machine's noise
THROUGHPUT_ROUNDS = 5


def rows(messages: int = 10_000, repeats: int = THROUGHPUT_ROUNDS) -> list[Row]:
    cpu = measure_cpu(messages, max(repeats, CPU_ROUNDS))
    case = f"client CPU, push -> pull -> ack of {messages:,} small messages, logging on"
    result = []
    for label, pick in (("median", statistics.median), ("best", min)):
        hook, bare = pick(cpu["hook"]), pick(cpu["bare"])
        note = "target <= 1.15 (full garbage collections count)" if label == "median" else "without noise"
        result.append(
            Row(
                "hook vs bare requests",
                f"{case} ({label} of rounds)",
                f"{hook:.3f} s",
                f"{bare:.3f} s",
                hook / bare,
                note,
            )
        )
    rates = measure(messages, max(repeats, THROUGHPUT_ROUNDS))
    for phase in PHASES:
        hook, bare, sdk = rates["hook"][phase], rates["bare"][phase], rates["sdk"][phase]
        result.append(
            Row(
                "hook vs bare requests",
                f"{phase}, {messages:,} messages",
                f"{hook:,.0f} msg/s",
                f"{bare:,.0f} msg/s",
                hook / bare,
                "target >= 0.90",
            )
        )
        result.append(
            Row(
                "hook vs cloudflare SDK",
                f"{phase}, {messages:,} messages",
                f"{hook:,.0f} msg/s",
                f"{sdk:,.0f} msg/s",
                hook / sdk,
                "target >= 1.00",
            )
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=THROUGHPUT_ROUNDS)
    args = parser.parse_args()
    print(table(rows(args.messages, args.repeats)))
    print(f"(median of {max(args.repeats, THROUGHPUT_ROUNDS)} rounds per client; emulator in its own process)")


if __name__ == "__main__":
    main()
