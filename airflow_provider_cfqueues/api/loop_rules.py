"""
The rules of one queue's pull loop (pure logic: no Airflow, no I/O).

The watchers of a queue (asset watchers of ``CloudflareQueuesMessageTrigger``) share **one** pull loop,
whatever their pull settings, however they spell the queue and whichever connection reaches it. This
module decides:

* :func:`merge_watchers`: what the loop does when its watchers ask for different things. How the queue
  is pulled is merged (the most eager wish wins: it costs pulls, never a message); what happens to a
  message nobody wanted must be the same on every watcher, or the loop pulls nothing;
* :func:`deployment_verdict`: whether this loop may pull at all, from what every loop of the queue in
  the deployment (other triggerer processes) has published. A loop that gives back or poisons a message
  none of *its* watchers wanted is right only if it holds every watcher of the queue; so it pulls only
  when no other loop or watcher of the queue is alive anywhere, and every watcher recently seen (before
  a restart) is back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple


class SettleRule(NamedTuple):
    """
    How a queue's loop settles a message no watcher wanted: every watcher of the queue must say the same.

    :param on_rejected: ``"retry"``, ``"dead_letter"`` or ``"poison"``.
    :param poison_queue: the queue for ``"poison"``.
    :param message_retry_delay: the delay of ``"retry"``, as the watchers give it.
    """

    on_rejected: str = "retry"
    poison_queue: str | None = None
    message_retry_delay: object = None


#: the watcher settings that decide how a message nobody wanted is settled: they must agree
SETTLE_FIELDS = SettleRule._fields


@dataclass(frozen=True)
class PullWishes:
    """
    How one watcher would have its queue pulled.

    :param batch_size: messages per pull.
    :param max_messages_per_event: messages per event of this watcher (the loop gathers the largest).
    :param visibility_timeout: seconds a pulled message stays leased.
    :param poll_interval: seconds before pulling again after an empty pull.
    :param max_poll_interval: the longest wait between pulls of an idle queue.
    :param paused_poll_interval: seconds between pulls while the queue's delivery is paused.
    """

    batch_size: int
    max_messages_per_event: int
    visibility_timeout: float
    poll_interval: float
    max_poll_interval: float
    paused_poll_interval: float


@dataclass(frozen=True)
class WatcherSpec:
    """
    One watcher of a queue, as its loop sees it.

    :param key: a key unique in the process (the trigger id in a triggerer).
    :param trigger_id: Airflow's trigger id (``None`` outside a triggerer).
    :param assets: the names of the assets it fires events for (empty when unknown).
    :param ack: its ``ack`` mode.
    :param conn_id: the connection it names.
    :param queue: the queue as it spells it (a name or an id).
    :param pull: how it would have the queue pulled.
    :param settle: ``on_rejected``, ``poison_queue`` and ``message_retry_delay`` as it gives them.
    """

    key: str
    trigger_id: int | None
    assets: tuple[str, ...]
    ack: str
    conn_id: str
    queue: str
    pull: PullWishes
    settle: SettleRule

    def describe(self) -> str:
        """``the watcher of asset(s) 'shop_orders' (trigger 12)``."""
        assets = ", ".join(repr(a) for a in self.assets) or "(unknown asset)"
        trigger = f"trigger {self.trigger_id}" if self.trigger_id is not None else f"watcher {self.key}"
        return f"the watcher of asset(s) {assets} ({trigger})"


@dataclass(frozen=True)
class LoopPlan:
    """
    What one queue's loop does for its current watchers.

    :param pull: the merged pull settings.
    :param settle: the settle settings every watcher agrees on (``None`` on a conflict).
    :param conflicts: why the loop must not pull (watchers disagree on how to settle, or a watcher
        in another ack mode would take the messages of the ``"persisted"`` ones), each naming both
        watchers.
    :param merged: what was merged, for the log (``poll_interval: 2 (asked 2, 3)``).
    """

    pull: PullWishes | None
    settle: SettleRule | None
    conflicts: tuple[str, ...] = ()
    merged: tuple[str, ...] = ()


def _merge_pull(wishes: Sequence[PullWishes]) -> tuple[PullWishes, tuple[str, ...]]:
    rules = {
        "batch_size": max,
        "max_messages_per_event": max,
        "visibility_timeout": max,
        "poll_interval": min,
        "max_poll_interval": min,
        "paused_poll_interval": min,
    }
    values: dict[str, float] = {}
    merged = []
    for name, rule in rules.items():
        asked = sorted({getattr(w, name) for w in wishes})
        values[name] = rule(asked)
        if len(asked) > 1:
            merged.append(f"{name}: {values[name]:g} (asked {', '.join(f'{a:g}' for a in asked)})")
    values["max_poll_interval"] = max(values["max_poll_interval"], values["poll_interval"])
    return (
        PullWishes(
            batch_size=int(values["batch_size"]),
            max_messages_per_event=int(values["max_messages_per_event"]),
            visibility_timeout=values["visibility_timeout"],
            poll_interval=values["poll_interval"],
            max_poll_interval=values["max_poll_interval"],
            paused_poll_interval=values["paused_poll_interval"],
        ),
        tuple(merged),
    )


def _settle_text(settle: SettleRule) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in settle._asdict().items())


def merge_watchers(watchers: Iterable[WatcherSpec]) -> LoopPlan:
    """
    The loop's plan for these watchers (in any order: the result does not depend on it).

    * Pull settings merge: the largest ``batch_size``, ``max_messages_per_event`` (gathered per batch;
      each watcher cuts its events at its own) and ``visibility_timeout``; the smallest poll
      intervals.
    * ``on_rejected``, ``poison_queue`` and ``message_retry_delay`` must be the same on every
      ``"persisted"`` watcher: no rule can pick between "poison it" and "give it back" for someone
      else's DAG, so a disagreement is a conflict and the loop pulls nothing.
    * A watcher in ``"dag"`` or ``"emitted"`` mode beside ``"persisted"`` ones would take (and fire)
      messages they want: a conflict too.
    """
    ordered = sorted(watchers, key=lambda w: (w.trigger_id is None, w.trigger_id or 0, w.key))
    persisted = [w for w in ordered if w.ack == "persisted"]
    others = [w for w in ordered if w.ack != "persisted"]
    if not persisted:
        return LoopPlan(pull=None, settle=None)
    conflicts = []
    first = persisted[0]
    for watcher in persisted[1:]:
        if watcher.settle != first.settle:
            conflicts.append(
                f"{first.describe()} settles unwanted messages with {_settle_text(first.settle)} and "
                f"{watcher.describe()} with {_settle_text(watcher.settle)}: give every watcher of the queue "
                "the same on_rejected, poison_queue and message_retry_delay"
            )
    for watcher in others:
        conflicts.append(
            f"{watcher.describe()} uses ack={watcher.ack!r} and would take messages that {first.describe()} "
            "(ack='persisted') wants: watch the queue in one ack mode (ack='persisted' with message_filter), "
            "or give the other mode its own queue"
        )
    pull, merged = _merge_pull([w.pull for w in persisted])
    return LoopPlan(
        pull=pull,
        settle=None if conflicts else first.settle,
        conflicts=tuple(conflicts),
        merged=merged,
    )


# -- the deployment: loops of the same queue in other processes ---------------------------------


@dataclass(frozen=True)
class LoopEntry:
    """
    What one loop publishes about itself in the deployment-wide registry (one entry per loop).

    :param loop: the loop's random id (new with every process).
    :param where: the process, for people: ``host pid 123 (triggerer job 7)``.
    :param state: ``"running"`` while the loop lives, ``"stopped"`` once it stopped cleanly (kept as
        the list of watchers to wait for after a restart).
    :param beat: a counter the loop raises every heartbeat (readers time it on their own clock).
    :param watchers: trigger key -> ``{"assets": [...], "ack": ...}`` of the watchers it holds.
    """

    loop: str
    where: str
    state: str
    beat: int
    watchers: Mapping[str, Mapping[str, object]]

    def to_json(self) -> dict[str, object]:
        return {
            "version": 1,
            "loop": self.loop,
            "where": self.where,
            "state": self.state,
            "beat": self.beat,
            "watchers": {k: dict(v) for k, v in self.watchers.items()},
        }

    @classmethod
    def from_json(cls, data: object) -> LoopEntry | None:
        """The entry, or ``None`` for anything that is not one (a foreign or damaged value)."""
        if not isinstance(data, dict) or data.get("version") != 1:
            return None
        watchers = data.get("watchers")
        if not isinstance(watchers, dict) or not all(isinstance(v, dict) for v in watchers.values()):
            return None
        try:
            return cls(str(data["loop"]), str(data["where"]), str(data["state"]), int(data["beat"]), watchers)
        except (KeyError, TypeError, ValueError):
            return None

    def describe(self) -> str:
        assets = sorted({str(a) for w in self.watchers.values() for a in w.get("assets", []) or []})  # type: ignore[attr-defined]
        ids = ", ".join(sorted(self.watchers))
        shown = ", ".join(repr(a) for a in assets) or "(unknown assets)"
        return f"{self.where}: watchers of {shown} (trigger(s) {ids or 'none'})"


@dataclass
class Sighting:
    """
    When a reader last saw an entry's heartbeat move, on the reader's own clock (so that clocks of
    different hosts never need to agree).

    :param beat: the last heartbeat counter seen.
    :param since: the reader's monotonic time when it was first seen.
    """

    beat: int
    since: float


@dataclass
class Liveness:
    """
    A reader's view of the other loops' heartbeats.

    :param alive_for: seconds an entry stays alive after its heartbeat last moved.
    :param remembered_for: seconds a stopped (or dead) loop's watchers are waited for.
    """

    alive_for: float
    remembered_for: float
    seen: dict[str, Sighting] = field(default_factory=dict)

    def observe(self, entries: Mapping[str, LoopEntry], now: float) -> None:
        for key, entry in entries.items():
            sighting = self.seen.get(key)
            if sighting is None or sighting.beat != entry.beat:
                self.seen[key] = Sighting(entry.beat, now)
        for key in set(self.seen) - set(entries):
            del self.seen[key]

    def age(self, key: str, now: float) -> float:
        sighting = self.seen.get(key)
        return 0.0 if sighting is None else now - sighting.since


@dataclass(frozen=True)
class Verdict:
    """
    Whether a loop may pull, and why not.

    :param pull: pull (``True``) or hold.
    :param reason: why it holds, with what to do (empty when it pulls).
    :param forget: registry keys of entries nobody needs any more (to delete).
    """

    pull: bool
    reason: str = ""
    forget: tuple[str, ...] = ()


def deployment_verdict(
    me: LoopEntry, entries: Mapping[str, LoopEntry], liveness: Liveness, now: float, *, persisted: bool
) -> Verdict:
    """
    Whether the loop ``me`` may pull (``persisted``: it settles unwanted messages; otherwise it is a
    watcher in ``"dag"``/``"emitted"`` mode, which may run beside others of its kind but never beside a
    ``"persisted"`` loop), given every entry of its queue in the registry (its own included).

    * Another loop alive (its heartbeat moved within ``alive_for``): a split. Both sides hold, so that
      neither gives back or poisons what the other's watchers want; they go on when one is gone.
    * A loop stopped or dead within ``remembered_for``: its watchers are waited for until each is held
      here (then its entry is forgotten), so that a restart does not reject what a watcher that is not
      back yet wants.
    """
    liveness.observe(entries, now)
    split, waiting, forget = [], [], []
    mine = set(me.watchers)
    for key, entry in entries.items():
        if entry.loop == me.loop:
            continue
        age = liveness.age(key, now)
        alive = entry.state == "running" and age < liveness.alive_for
        other_persisted = any(w.get("ack") == "persisted" for w in entry.watchers.values())
        if alive:
            if persisted or other_persisted:
                split.append(entry)
            continue
        if not persisted:
            continue  # what a stopped loop held matters to the persisted loop that comes after it
        missing = {k for k, w in entry.watchers.items() if w.get("ack") == "persisted"} - mine
        if missing and age < liveness.remembered_for:
            waiting.append((entry, sorted(missing)))
        else:
            forget.append(key)
    if split:
        others = "; ".join(e.describe() for e in split)
        return Verdict(
            False,
            f"the queue is watched from another triggerer process too ({others}); this side holds {me.describe()}. "
            "A loop that does not hold every watcher of its queue would give back or poison messages the other "
            "side wants, so both sides pull nothing until one of them is gone. Run every watcher of a queue in one "
            "triggerer: set [triggerer] queues_enabled = True, start your HA triggerers with --queues <executor "
            "queues> (they run deferred tasks), and exactly one triggerer without --queues (it runs every asset "
            "watcher); or give each DAG its own queue (docs/airflow.md, 'One queue, many DAGs')",
            tuple(forget),
        )
    if waiting:
        text = "; ".join(f"trigger(s) {', '.join(ids)} of {entry.where}" for entry, ids in waiting)
        return Verdict(
            False,
            f"waiting for the watchers that held the queue before ({text}) to be back, so that nothing they want "
            f"is rejected; at most {liveness.remembered_for:g} s after that loop was last seen",
            tuple(forget),
        )
    return Verdict(True, "", tuple(forget))
