"""
Cloudflare's API budget: the emulator's model of it (1,200 requests per 5 minutes per token, pulls
and acks exempt, a block for a whole window past it), and the client spending it well (waiting out a
block up to max_retry_wait, sharing it across hooks and threads, pacing when it runs low). Time is
the emulator's manual clock; the hooks' sleeps advance it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_cfqueues.api.errors import CloudflareQueuesRateLimitError
from airflow_provider_cfqueues.api.retry import RetryPolicy
from airflow_provider_cfqueues.api.throttle import THROTTLES
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, ManualClock
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook

from ..helpers import TEST_TOKEN, point_connection
from ..raw_api import RawApi
from ..scripted_faults import ScriptedFaults


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_800_000_000.0)


def budgeted(clock: ManualClock, rate_limit: str, monkeypatch: pytest.MonkeyPatch) -> CloudflareQueuesEmulator:
    emulator = CloudflareQueuesEmulator(token=TEST_TOKEN, clock=clock, rate_limit=rate_limit)
    emulator.start()
    point_connection(monkeypatch, emulator)
    # the process-wide budget of this token follows the emulator's clock
    THROTTLES.get(emulator.base_url, emulator.account_id).clock = clock.now
    return emulator


@pytest.fixture
def small(clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[CloudflareQueuesEmulator]:
    emulator = budgeted(clock, "5/60", monkeypatch)
    yield emulator
    emulator.stop()


def hook_on(clock: ManualClock, sleeps: list[float] | None = None, **policy: float) -> CloudflareQueuesHook:
    """A hook whose waits advance the manual clock instead of sleeping."""
    hook = CloudflareQueuesHook(queue="q", retry_policy=RetryPolicy(initial_backoff=0, max_backoff=0, **policy))  # type: ignore[arg-type]

    def wait(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)
        clock.advance(seconds)

    hook._sleep = wait
    return hook


def test_the_emulator_models_the_budget(small: CloudflareQueuesEmulator, clock: ManualClock) -> None:
    queue = small.create_queue("q")
    api = RawApi(small)
    api.push(queue.id, {"a": 1})  # 1 of 5
    for _ in range(10):  # pulls and acks do not count
        (message,) = api.pull(queue.id)["messages"] or [None]
        if message:
            api.ok("POST", f"/{queue.id}/messages/ack", {"retries": [{"lease_id": message["lease_id"]}]})
    headers = [api.session.get(f"{api.base}/{queue.id}/metrics", timeout=5).headers for _ in range(4)]
    assert [h["Ratelimit"] for h in headers] == [f'"default";r={r};t=60' for r in (3, 2, 1, 0)]
    assert headers[0]["Ratelimit-Policy"] == '"default";q=5;w=60'
    over = api.session.get(f"{api.base}/{queue.id}/metrics", timeout=5)
    assert over.status_code == 429 and over.headers["Retry-After"] == "60"
    pull = api.session.post(f"{api.base}/{queue.id}/messages/pull", json={}, timeout=5)
    assert pull.status_code == 429  # once blocked, every call of the token is refused
    clock.advance(30)
    assert api.session.get(f"{api.base}/{queue.id}", timeout=5).headers["Retry-After"] == "30"
    clock.advance(30)
    assert api.session.get(f"{api.base}/{queue.id}", timeout=5).status_code == 200
    assert small.app.budget is not None and small.app.budget.refused == 3


def test_the_client_waits_for_the_window_instead_of_running_into_a_block(
    small: CloudflareQueuesEmulator, clock: ManualClock
) -> None:
    small.create_queue("q")
    sleeps: list[float] = []
    hook = hook_on(clock, sleeps)
    for n in range(12):
        hook.push_message({"n": n})
    assert small.app.budget is not None and small.app.budget.refused == 0  # never went over
    assert small.metrics("q")["backlog_count"] == 12
    assert sum(sleeps) == pytest.approx(120, abs=2)  # two resets of the 60 s window


def test_a_block_is_shared_by_every_hook_of_the_token(clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    with budgeted(clock, "3/300", monkeypatch) as emulator:  # the service blocks for 300 s
        queue = emulator.create_queue("q")
        api = RawApi(emulator)
        for _ in range(3):
            api.push(queue.id, {"spent": "elsewhere"})  # another program used up the budget
        impatient = hook_on(clock, max_attempts=1)
        with pytest.raises(CloudflareQueuesRateLimitError):
            impatient.get_metrics()  # runs into the block: 429 with Retry-After 300
        budget = emulator.app.budget
        assert budget is not None and budget.refused == 1
        sleeps: list[float] = []
        other = hook_on(clock, sleeps)  # another hook of the same token in this process
        assert other.get_metrics().backlog_count == 3
        assert budget.refused == 1  # it waited out the block without discovering it again
        assert sleeps == [pytest.approx(300, abs=1)]


def test_a_wait_longer_than_max_retry_wait_is_a_clear_error(
    clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with budgeted(clock, "2/600", monkeypatch) as emulator:
        queue = emulator.create_queue("q")
        hook = hook_on(clock)
        hook.push_message({"n": 1})  # the queue's name lookup, then the push: the budget is spent
        sent = emulator.app.requests["push"]
        with pytest.raises(CloudflareQueuesRateLimitError, match="blocked for another 600 s") as info:
            hook.push_message({"n": 2})  # the budget is spent until the window resets in 600 s
        assert "max_retry_wait=300 s; nothing was sent" in str(info.value)
        assert emulator.app.requests["push"] == sent
        # a Retry-After past max_retry_wait from the service itself says so too
        clock.advance(600)
        emulator.app.faults = ScriptedFaults({"metrics": ["throttle"]}, retry_after=900)
        with pytest.raises(CloudflareQueuesRateLimitError, match="asks to wait 900 s, more than max_retry_wait=300 s"):
            CloudflareQueuesHook(queue=queue.id).get_metrics()


def test_counted_requests_are_paced_when_the_budget_runs_low(
    clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with budgeted(clock, "100/60", monkeypatch) as emulator:
        emulator.create_queue("q")
        sleeps: list[float] = []
        hook = hook_on(clock, sleeps)
        for n in range(100):
            hook.push_message({"n": n})
        assert emulator.app.budget is not None and emulator.app.budget.refused == 0
        paced = [s for s in sleeps if s > 0]
        assert len(paced) >= 9  # the last tenth of the budget is spread over what is left of the window
        assert max(paced) < 60


def test_the_cli_takes_a_rate_limit() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_cfqueues.emulator", "--rate-limit", "fast"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "REQUESTS/SECONDS" in result.stderr


@pytest.mark.cfqueues(rate_limit="2/60", queues=["q"])
def test_the_pytest_marker_takes_a_rate_limit(cfqueues_emulator: CloudflareQueuesEmulator) -> None:
    assert cfqueues_emulator.app.budget is not None and cfqueues_emulator.app.budget.quota == 2


def test_the_emulator_models_a_queues_throughput(clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    with CloudflareQueuesEmulator(token=TEST_TOKEN, clock=clock, queue_throughput=150) as emulator:
        point_connection(monkeypatch, emulator)
        queue = emulator.create_queue("q")
        api = RawApi(emulator)
        api.batch(queue.id, [{"body": {"n": n}} for n in range(100)])
        status, answer = api.call("POST", f"/{queue.id}/messages/batch", {"messages": [{"body": 1}] * 100})
        assert (status, answer["errors"][0]["code"]) == (429, 10250)  # 50 left this second
        assert len(api.pull(queue.id, batch_size=100)["messages"]) == 50  # a pull gets what is left
        sleeps: list[float] = []
        hook = hook_on(clock, sleeps)
        assert hook.push_messages([{"m": n} for n in range(100)]).messages == 100  # waits a second, then fits
        assert sleeps == [1] and THROTTLES.get(emulator.base_url, emulator.account_id).blocked_until < clock.now()


def test_the_free_plans_daily_operations_fail_with_what_to_do(
    clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the Free plan's operations of the day, the hook does not wait for midnight: it says why."""
    with CloudflareQueuesEmulator(token=TEST_TOKEN, clock=clock, plan="free") as emulator:
        point_connection(monkeypatch, emulator)
        emulator.create_queue("q")
        emulator.app.operations.limit = 3  # type: ignore[union-attr]
        hook = hook_on(clock)
        hook.push_messages([1, 2, 3])
        with pytest.raises(CloudflareQueuesRateLimitError, match="Free plan allows 10,000 operations a day") as err:
            hook.push_message(4)
        assert "QueueOperationsLimitExceeded" in str(err.value) and err.value.codes == [10253]
