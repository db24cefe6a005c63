"""
A steady flood through one queue of the emulator, in a process of its own: ``count`` messages pushed,
pulled and acked 100 at a time (the backlog stays near 0), the clock moving as a busy minute would.
Prints one JSON line: the messages acked, the seconds it took, and the peak RSS growth over the
emulator's baseline (KiB). Run by ``test_memory.py``; ``python -m tests.emulator.flood_memory 1000000``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, ManualClock
from airflow_provider_cfqueues.emulator.state import PushItem


def _status_kib(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (the peak of this process's own memory: unlike ``ru_maxrss``, not
    inherited from the parent that forked it) from ``/proc/self/status``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field}")


def flood(count: int, seconds_of_traffic: float = 60.0) -> dict[str, float]:
    clock = ManualClock()
    emulator = CloudflareQueuesEmulator(clock=clock)  # not started: the state is what keeps memory
    emulator.create_queue("flood")
    state, account, queue_id = emulator.state, emulator.account_id, emulator.queue("flood").queue_id
    batch = [PushItem(body=f'"message {n:03d}"', content_type="json", size=15) for n in range(100)]
    step = seconds_of_traffic / (count / 100)
    baseline = _status_kib("VmRSS")
    started = time.monotonic()
    acked = 0
    while acked < count:
        state.push(account, queue_id, batch)
        leases = [m["lease_id"] for m in state.pull(account, queue_id, 100, None)["messages"]]
        acked += state.ack(account, queue_id, leases, [])["ackCount"]
        clock.advance(step)
    took = time.monotonic() - started
    peak = _status_kib("VmHWM")
    backlog = state.metrics(account, queue_id)["backlog_count"]
    return {"acked": acked, "seconds": round(took, 1), "peak_growth_kib": peak - baseline, "backlog": backlog}


if __name__ == "__main__":
    print(json.dumps(flood(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)))
