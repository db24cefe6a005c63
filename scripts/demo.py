"""
The README's demo: start the bundled Cloudflare Queues emulator and show a push -> pull -> ack
round trip through its HTTP API, with readable output.

Run it with ``make demo``.
"""

from __future__ import annotations

import base64
import json

import requests

from airflow_provider_cfqueues.emulator import EmulatorProcess


def main() -> None:
    with EmulatorProcess(["demo-orders"]) as emulator:
        base = f"{emulator.base_url}/accounts/{emulator.account_id}/queues/{emulator.queue_ids['demo-orders']}"
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {emulator.token}"
        print(f"Emulator running at {emulator.base_url} (queue demo-orders = {emulator.queue_ids['demo-orders']})")

        orders = [{"order_id": n, "sku": f"SKU-{n:03d}", "qty": n % 3 + 1} for n in range(1, 6)]
        pushed = session.post(f"{base}/messages/batch", json={"messages": [{"body": o} for o in orders]}).json()
        print(
            f"pushed   {len(orders)} messages in 1 request; backlog now "
            f"{pushed['result']['metadata']['metrics']['backlog_count']}"
        )

        pulled = session.post(f"{base}/messages/pull", json={"batch_size": 10}).json()["result"]
        messages = pulled["messages"]
        print(f"pulled   {len(messages)} messages (leased for 30 s):")
        acks, retries = [], []
        for message in messages:
            body = json.loads(base64.b64decode(message["body"]))
            outcome = "retry" if body["order_id"] == 3 else "ack"
            (retries if outcome == "retry" else acks).append({"lease_id": message["lease_id"]})
            print(f"  - {message['id']} attempt {message['attempts']}: {body} -> {outcome}")

        result = session.post(f"{base}/messages/ack", json={"acks": acks, "retries": retries}).json()["result"]
        print(f"acked    {result['ackCount']}, retried {result['retryCount']}, warnings {result['warnings'] or 'none'}")
        metrics = session.get(f"{base}/metrics").json()["result"]
        print(f"backlog  {metrics['backlog_count']} message(s) left (the retried one comes back for another attempt)")


if __name__ == "__main__":
    main()
