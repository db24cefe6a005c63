"""The rules of a queue's pull loop: merged settings, conflicts, and the deployment verdict (pure)."""

from __future__ import annotations

import itertools

import pytest

from airflow_provider_cfqueues.api.loop_rules import (
    Liveness,
    LoopEntry,
    PullWishes,
    SettleRule,
    WatcherSpec,
    deployment_verdict,
    merge_watchers,
)

PULL = PullWishes(100, 100, 600.0, 5.0, 60.0, 60.0)
RETRY = SettleRule("retry", None, None)
POISON = SettleRule("poison", "shop-unrouted", None)


def watcher(trigger_id: int, *, ack: str = "persisted", settle: SettleRule = RETRY, **pull: float) -> WatcherSpec:
    wishes = PullWishes(**{**PULL.__dict__, **pull})  # type: ignore[arg-type]
    return WatcherSpec(str(trigger_id), trigger_id, (f"asset_{trigger_id}",), ack, "conn", "shop", wishes, settle)


def test_pull_settings_merge_to_the_most_eager_in_any_order() -> None:
    watchers = [
        watcher(1, poll_interval=2, batch_size=50, max_messages_per_event=500),
        watcher(2, poll_interval=3, visibility_timeout=900, max_poll_interval=10),
        watcher(3, paused_poll_interval=30),
    ]
    plans = {merge_watchers(order) for order in itertools.permutations(watchers)}
    assert len(plans) == 1  # the order the watchers arrive in changes nothing
    (plan,) = plans
    assert plan.pull == PullWishes(100, 500, 900.0, 2.0, 10.0, 30.0)
    assert plan.settle == RETRY and not plan.conflicts
    assert "poll_interval: 2 (asked 2, 3, 5)" in plan.merged


def test_a_max_poll_interval_below_the_poll_interval_is_raised_to_it() -> None:
    plan = merge_watchers([watcher(1, poll_interval=20, max_poll_interval=60), watcher(2, max_poll_interval=10)])
    assert plan.pull is not None and (plan.pull.poll_interval, plan.pull.max_poll_interval) == (5.0, 10.0)
    plan = merge_watchers([watcher(1, poll_interval=20, max_poll_interval=20)])
    assert plan.pull is not None and plan.pull.max_poll_interval == 20.0


@pytest.mark.parametrize(
    ("other", "says"),
    [
        (POISON, "on_rejected='poison', poison_queue='shop-unrouted'"),
        (SettleRule("retry", None, 60), "message_retry_delay=60"),
        (SettleRule("poison", "elsewhere", None), "poison_queue='elsewhere'"),
    ],
)
def test_settle_settings_must_agree(other: SettleRule, says: str) -> None:
    plan = merge_watchers([watcher(7), watcher(9, settle=other)])
    assert plan.settle is None  # the loop pulls nothing
    (conflict,) = plan.conflicts
    assert "asset(s) 'asset_7' (trigger 7)" in conflict and "asset(s) 'asset_9' (trigger 9)" in conflict
    assert says in conflict and "give every watcher of the queue the same" in conflict


def test_a_watcher_in_another_ack_mode_beside_persisted_ones_is_a_conflict() -> None:
    for ack in ("dag", "emitted"):
        plan = merge_watchers([watcher(1), watcher(2, ack=ack)])
        (conflict,) = plan.conflicts
        assert f"(trigger 2) uses ack={ack!r} and would take messages that" in conflict
        assert "'asset_1' (trigger 1) (ack='persisted')" in conflict
    assert merge_watchers([watcher(1, ack="dag"), watcher(2, ack="emitted")]).pull is None  # no loop to run


def entry(loop: str, state: str = "running", beat: int = 1, **watchers: str) -> LoopEntry:
    return LoopEntry(
        loop, f"host-{loop}", state, beat, {k: {"assets": [f"a{k}"], "ack": v} for k, v in watchers.items()}
    )


def test_another_live_loop_of_the_queue_makes_both_sides_hold() -> None:
    a = entry("A", **{"1": "persisted"})
    b = entry("B", **{"2": "persisted"})
    registry = {"k.A": a, "k.B": b}
    for me in (a, b):
        verdict = deployment_verdict(me, registry, Liveness(15, 120), 0.0, persisted=True)
        assert not verdict.pull
        assert "another triggerer process" in verdict.reason and "queues_enabled = True" in verdict.reason
        assert "--queues" in verdict.reason and "its own queue" in verdict.reason
    alone = deployment_verdict(a, {"k.A": a}, Liveness(15, 120), 0.0, persisted=True)
    assert alone.pull and not alone.forget


def test_a_loop_whose_heartbeat_stops_is_gone_after_alive_for_on_the_readers_clock() -> None:
    me = entry("A", **{"1": "persisted"})
    liveness = Liveness(alive_for=15, remembered_for=120)
    other = entry("B", beat=7, **{"1": "persisted"})  # a rolling deploy runs trigger 1 twice
    assert not deployment_verdict(me, {"k.A": me, "k.B": other}, liveness, 100.0, persisted=True).pull
    assert not deployment_verdict(me, {"k.A": me, "k.B": other}, liveness, 114.0, persisted=True).pull
    moved = entry("B", beat=8, **{"1": "persisted"})  # still beating: alive again for 15 s
    assert not deployment_verdict(me, {"k.A": me, "k.B": moved}, liveness, 120.0, persisted=True).pull
    gone = deployment_verdict(me, {"k.A": me, "k.B": moved}, liveness, 135.5, persisted=True)
    assert gone.pull and gone.forget == ("k.B",)  # it held nothing this loop lacks


def test_after_a_restart_the_watchers_of_the_stopped_loop_are_waited_for() -> None:
    before = entry("OLD", state="stopped", **{"1": "persisted", "2": "persisted"})
    liveness = Liveness(alive_for=15, remembered_for=120)
    back_one = entry("NEW", **{"1": "persisted"})
    verdict = deployment_verdict(back_one, {"k.OLD": before, "k.NEW": back_one}, liveness, 0.0, persisted=True)
    assert not verdict.pull and "trigger(s) 2 of host-OLD" in verdict.reason
    back_both = entry("NEW", beat=2, **{"1": "persisted", "2": "persisted"})
    verdict = deployment_verdict(back_both, {"k.OLD": before, "k.NEW": back_both}, liveness, 3.0, persisted=True)
    assert verdict.pull and verdict.forget == ("k.OLD",)
    # a watcher that never comes back (its DAG was deleted) is waited for remembered_for at most
    verdict = deployment_verdict(back_one, {"k.OLD": before, "k.NEW": back_one}, liveness, 121.0, persisted=True)
    assert verdict.pull and verdict.forget == ("k.OLD",)


def test_watchers_in_dag_mode_may_run_beside_each_other_but_not_beside_a_persisted_loop() -> None:
    mine = entry("A", **{"1": "dag"})
    other_dag = entry("B", **{"2": "emitted"})
    assert deployment_verdict(mine, {"a": mine, "b": other_dag}, Liveness(15, 120), 0.0, persisted=False).pull
    persisted = entry("C", **{"3": "persisted"})
    verdict = deployment_verdict(mine, {"a": mine, "c": persisted}, Liveness(15, 120), 0.0, persisted=False)
    assert not verdict.pull and "host-C" in verdict.reason
    # and a persisted loop holds while a dag-mode watcher of its queue lives elsewhere
    assert not deployment_verdict(persisted, {"a": mine, "c": persisted}, Liveness(15, 120), 0, persisted=True).pull
    stopped = entry("D", state="stopped", **{"4": "persisted"})
    assert deployment_verdict(mine, {"a": mine, "d": stopped}, Liveness(15, 120), 0.0, persisted=False).pull


def test_registry_entries_read_back_and_foreign_values_are_ignored() -> None:
    original = entry("A", beat=3, **{"1": "persisted"})
    assert LoopEntry.from_json(original.to_json()) == original
    for foreign in (None, [], {"version": 2}, {"version": 1, "watchers": []}, {"version": 1, "watchers": {}}):
        assert LoopEntry.from_json(foreign) is None
