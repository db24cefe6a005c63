"""Fault injection: seeded, per endpoint, and each kind behaves as documented."""

from __future__ import annotations

import time

import pytest
import requests

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, FaultPlan, FaultRule
from airflow_provider_cfqueues.emulator.faults import parse_fault_spec

from ..raw_api import RawApi

pytestmark = pytest.mark.airflow_agnostic  # the emulator alone: run in the Airflow 3 suite only


def decisions(plan: FaultPlan, endpoint: str, n: int) -> list[str | None]:
    return [plan.decide(endpoint).kind for _ in range(n)]


def test_same_seed_same_faults() -> None:
    rules = {"*": FaultRule(error=0.2, throttle=0.1, lost=0.1)}
    first = decisions(FaultPlan(rules=dict(rules), seed=7), "push", 200)
    second = decisions(FaultPlan(rules=dict(rules), seed=7), "push", 200)
    other_seed = decisions(FaultPlan(rules=dict(rules), seed=8), "push", 200)
    assert first == second
    assert first != other_seed


def test_endpoint_streams_are_independent() -> None:
    plan = FaultPlan(rules={"*": FaultRule(error=0.5)}, seed=1)
    alone = decisions(FaultPlan(rules={"*": FaultRule(error=0.5)}, seed=1), "pull", 50)
    decisions(plan, "push", 17)  # traffic on another endpoint does not shift pull's faults
    assert decisions(plan, "pull", 50) == alone


def test_rates_are_respected() -> None:
    plan = FaultPlan(rules={"ack": FaultRule(error=0.25, throttle=0.25)}, seed=3)
    kinds = decisions(plan, "ack", 4000)
    assert 0.22 < kinds.count("error") / 4000 < 0.28
    assert 0.22 < kinds.count("throttle") / 4000 < 0.28
    assert decisions(plan, "push", 100) == [None] * 100  # no rule for push and no "*"


def test_invalid_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="sum to at most 1"):
        FaultRule(error=0.7, lost=0.5)
    with pytest.raises(ValueError, match="unknown endpoint"):
        FaultPlan(rules={"pushh": FaultRule()})
    with pytest.raises(ValueError, match="unknown fault key"):
        parse_fault_spec("push:errors=0.1")


def test_parse_fault_spec() -> None:
    assert parse_fault_spec("*:error=0.1,latency=0.05,retry_after=2") == (
        "*",
        FaultRule(error=0.1, latency=0.05, retry_after=2),
    )


@pytest.fixture
def api(emulator: CloudflareQueuesEmulator) -> RawApi:
    return RawApi(emulator)


def test_error_and_throttle_answers_change_nothing(emulator: CloudflareQueuesEmulator, api: RawApi) -> None:
    queue = emulator.create_queue("q")
    emulator.faults.set("push", error=1.0)
    status, payload = api.call("POST", f"/{queue.id}/messages", {"body": {}})
    assert status in (500, 503) and payload["errors"][0]["code"] == 15000
    emulator.faults.set("push", throttle=1.0, retry_after=3)
    response = api.session.post(f"{api.base}/{queue.id}/messages", json={"body": {}})
    assert response.status_code == 429 and response.headers["Retry-After"] == "3"
    emulator.faults.set("push", html=1.0)
    response = api.session.post(f"{api.base}/{queue.id}/messages", json={"body": {}})
    assert response.status_code == 502 and response.headers["Content-Type"] == "text/html"
    emulator.faults.clear()
    assert api.metrics(queue.id)["backlog_count"] == 0
    assert emulator.faults.injected[("push", "throttle")] == 1


def test_lost_answer_applies_the_change(emulator: CloudflareQueuesEmulator, api: RawApi) -> None:
    queue = emulator.create_queue("q")
    emulator.faults.set("push_batch", lost=1.0)
    with pytest.raises(requests.ConnectionError):
        api.session.post(f"{api.base}/{queue.id}/messages/batch", json={"messages": [{"body": 1}, {"body": 2}]})
    emulator.faults.clear()
    assert api.metrics(queue.id)["backlog_count"] == 2
    assert emulator.app.lost_answers["push_batch"] == 1


def test_truncated_answer_applies_the_change(emulator: CloudflareQueuesEmulator, api: RawApi) -> None:
    queue = emulator.create_queue("q")
    api.push(queue.id, {"a": 1})
    emulator.faults.set("pull", truncated=1.0)
    response = api.session.post(f"{api.base}/{queue.id}/messages/pull", json={})
    with pytest.raises(requests.JSONDecodeError):
        response.json()
    emulator.faults.clear()
    assert [m.state for m in emulator.messages("q")] == ["leased"]


def test_latency_is_added(emulator: CloudflareQueuesEmulator, api: RawApi) -> None:
    queue = emulator.create_queue("q")
    emulator.faults.set("metrics", latency=0.2)
    started = time.monotonic()
    api.metrics(queue.id)
    assert time.monotonic() - started >= 0.2


def test_journal_explains_lost_answers() -> None:
    with CloudflareQueuesEmulator(record_events=True) as emulator:
        queue = emulator.create_queue("q")
        api = RawApi(emulator)
        emulator.faults.set("push", lost=1.0)
        with pytest.raises(requests.ConnectionError):
            api.session.post(f"{api.base}/{queue.id}/messages", json={"body": {"n": 1}})
        lost = [e for e in emulator.events if e.kind == "lost_answer"]
        pushed = [e for e in emulator.events if e.kind == "push"]
        assert len(lost) == 1 and lost[0].detail == "push"
        assert lost[0].message_ids == pushed[0].message_ids
