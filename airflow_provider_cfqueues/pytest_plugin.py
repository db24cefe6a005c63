"""
pytest fixtures for testing DAGs that use Cloudflare Queues, against the bundled emulator.

Installed with the provider and registered through the ``pytest11`` entry point, so they are
available in any test suite of a project that has the provider installed::

    def test_my_dag(cfqueues_emulator, cfqueues_connection):
        queue = cfqueues_emulator.create_queue("orders")
        my_dag.test()
        assert cfqueues_emulator.metrics("orders")["backlog_count"] == 0

``cfqueues_emulator`` serves on a free loopback port for the duration of one test.
``cfqueues_connection`` points the Airflow connection ``cloudflare_queues_default`` at it (through
an ``AIRFLOW_CONN_*`` environment variable) and returns the connection id. The ``cfqueues`` marker
tunes the emulator::

    @pytest.mark.cfqueues(manual_clock=True, queues=["orders"], conn_id="my_conn")
    def test_redelivery(cfqueues_emulator):
        cfqueues_emulator.clock.advance(31)  # expire 30 s leases without sleeping

This module imports nothing from Airflow, so loading it costs nothing in other test suites.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .emulator import DEFAULT_CONN_ID, CloudflareQueuesEmulator, FaultPlan, ManualClock


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "cfqueues(manual_clock=False, queues=(), conn_id='cloudflare_queues_default', faults=None, token=None, "
        "json_bodies='base64', rate_limit=None, queue_throughput=None, purge_seconds=0, "
        "read_only_token=None): "
        "options of the cfqueues_emulator fixture",
    )


@pytest.fixture
def cfqueues_emulator(request: pytest.FixtureRequest) -> Iterator[CloudflareQueuesEmulator]:
    """A running Cloudflare Queues emulator on a free loopback port, stopped after the test."""
    marker = request.node.get_closest_marker("cfqueues")
    options = dict(marker.kwargs) if marker else {}
    faults = options.get("faults")
    emulator = CloudflareQueuesEmulator(
        token=options.get("token"),
        clock=ManualClock() if options.get("manual_clock") else None,
        faults=faults if isinstance(faults, FaultPlan) else None,
        json_bodies=options.get("json_bodies", "base64"),
        rate_limit=options.get("rate_limit"),
        queue_throughput=options.get("queue_throughput"),
        purge_seconds=float(options.get("purge_seconds", 0.0)),
        read_only_token=options.get("read_only_token"),
    )
    with emulator:
        for name in options.get("queues", ()):
            emulator.create_queue(name)
        yield emulator


@pytest.fixture
def cfqueues_connection(
    request: pytest.FixtureRequest, cfqueues_emulator: CloudflareQueuesEmulator, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Define the Airflow connection to the emulator for this test and return its conn id."""
    marker = request.node.get_closest_marker("cfqueues")
    conn_id = str(marker.kwargs.get("conn_id", DEFAULT_CONN_ID)) if marker else DEFAULT_CONN_ID
    for name, value in cfqueues_emulator.airflow_connection_env(conn_id).items():
        monkeypatch.setenv(name, value)
    return conn_id
