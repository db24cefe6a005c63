"""
Run every benchmark and print one table (``make bench``): each row measured side by side with its
baseline in the same run, with the ratio. Also draws ``docs/drain_throughput.png``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")  # the table, not Airflow's logs
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="cfq-bench-"))

import drain_throughput
import emulator_throughput
import hook_vs_baselines
import idle_trigger
import push_budget
import requests_per_message
import task_overhead
import triggerer_scale
from common import Row, table

BENCHMARKS = [
    ("requests per message", requests_per_message.rows),
    ("hook vs baselines", hook_vs_baselines.rows),
    ("drain throughput", drain_throughput.rows),
    ("triggerer scale", triggerer_scale.rows),
    ("push under the API budget", push_budget.rows),
    ("idle message trigger", idle_trigger.rows),
    ("emulator throughput", emulator_throughput.rows),
    ("task overhead", task_overhead.rows),
]


def main() -> int:
    rows: list[Row] = []
    for name, run in BENCHMARKS:
        started = time.monotonic()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.extend(run())
        print(f"  {name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
