"""
The one vocabulary of what happens to a pulled message, shared by the drain's rules
(:mod:`.drain_rules`), the message stream's (:mod:`.stream_rules`) and the flow that carries both out
(:mod:`.give_back`).
"""

from __future__ import annotations

import enum


class Action(str, enum.Enum):
    """What to do with one delivery (a ``str``: ``Action.ACK == "ack"``)."""

    PROCESS = "process"  #: hand it to ``process`` (the drain only)
    ACK = "ack"  #: acknowledge it: it is done
    RETRY = "retry"  #: give it back with a delay; the drain counts it as a failure
    HOLD = "hold"  #: keep its lease until the run ends, then give it back (the drain only)
    RELEASE = "release"  #: give it back unprocessed (the drain only)
    POISON = "poison"  #: push a copy to a poison queue (or hand it to ``on_poison``), then ack it


class Fate(enum.Enum):
    """What the service does with a message given back."""

    COMES_BACK = "comes back"
    DEAD_LETTERED = "dead-lettered"
    DELETED = "deleted"
