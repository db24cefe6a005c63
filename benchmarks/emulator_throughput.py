"""
Emulator end-to-end throughput: batch push 100 -> pull 100 -> ack 100, in messages per second.

The emulator runs in its own process (as in every benchmark), the client is a bare keep-alive
``requests.Session``. The figure must stay far above Cloudflare's 5,000 messages/s per queue, so that
the emulator is never what later benchmarks measure.

Run: ``.venv/bin/python benchmarks/emulator_throughput.py [--messages 20000] [--clients 1]``
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import requests
from common import Row, table

from airflow_provider_cfqueues.emulator import EmulatorProcess

SERVICE_LIMIT = 5_000  # messages/s per queue on Cloudflare


def drain_rounds(base: str, token: str, rounds: int, payload: bytes) -> None:
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    pull_body = json.dumps({"batch_size": 100, "visibility_timeout_ms": 60_000})
    for _ in range(rounds):
        session.post(f"{base}/messages/batch", data=payload).raise_for_status()
        pulled = session.post(f"{base}/messages/pull", data=pull_body)
        pulled.raise_for_status()
        leases = [{"lease_id": m["lease_id"]} for m in pulled.json()["result"]["messages"]]
        session.post(f"{base}/messages/ack", data=json.dumps({"acks": leases})).raise_for_status()


def measure(messages: int, clients: int) -> float:
    names = [f"bench-{i}" for i in range(clients)]
    body = {"messages": [{"body": {"order": i, "sku": "A-1234", "qty": 3}} for i in range(100)]}
    payload = json.dumps(body).encode()
    rounds = max(1, messages // (100 * clients))
    with EmulatorProcess(names) as emulator:
        bases = [f"{emulator.base_url}/accounts/{emulator.account_id}/queues/{emulator.queue_ids[n]}" for n in names]
        drain_rounds(bases[0], emulator.token, 5, payload)  # warm-up
        threads = [threading.Thread(target=drain_rounds, args=(b, emulator.token, rounds, payload)) for b in bases]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    return rounds * 100 * clients / elapsed


def rows(messages: int = 20_000) -> list[Row]:
    rate = measure(messages, 1)
    return [
        Row(
            "emulator",
            "push 100 -> pull 100 -> ack, 1 client",
            f"{rate:,.0f} msg/s",
            f"{SERVICE_LIMIT:,} msg/s (service)",
            rate / SERVICE_LIMIT,
            "must stay far above 1",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=1)
    args = parser.parse_args()
    if args.clients == 1:
        print(table(rows(args.messages)))
        return
    rate = measure(args.messages, args.clients)
    print(f"emulator push->pull->ack: {rate:,.0f} messages/s with {args.clients} clients")


if __name__ == "__main__":
    main()
