"""
What live contract runs created in an account, recorded where an interrupted run cannot lose it: a
JSON-lines file (``CFQUEUES_CONTRACT_RECORD``, default ``contract-report/created-queues.jsonl``) to which
every step is appended and flushed before the request that depends on it is sent:

* ``intend``: a queue's name and the time, before the request that creates it (or, for a dead-letter
  queue the service creates, before the consumer that names it);
* ``created``: its id, once the answer arrives;
* ``deleted``: once it is gone.

``make contract-cleanup`` deletes only what this file says a run created and did not delete, and only
while the queue still carries the recorded name. Entries are kept per account (a hash of the API URL and
the account id: the file holds neither).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

RECORD_ENV = "CFQUEUES_CONTRACT_RECORD"
DEFAULT_RECORD = Path(__file__).resolve().parents[2] / "contract-report" / "created-queues.jsonl"


def record_path() -> Path:
    return Path(os.environ.get(RECORD_ENV) or DEFAULT_RECORD)


def account_scope(base_url: str, account_id: str) -> str:
    return hashlib.sha256(f"{base_url.rstrip('/')}\n{account_id}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Created:
    """
    A queue a run created (or meant to), not yet deleted.

    :param name: its recorded name.
    :param queue_id: its id (``None`` when the create's answer never arrived, or the service makes it).
    :param at: when the run was about to create it (seconds since the epoch).
    """

    name: str
    queue_id: str | None
    at: float


class CreatedRecord:
    """
    The record of one account's contract queues.

    :param path: the JSON-lines file.
    :param scope: the account's scope (:func:`account_scope`).
    """

    def __init__(self, path: Path, scope: str) -> None:
        self.path = path
        self.scope = scope

    def _append(self, **entry: object) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps({"scope": self.scope, **entry}) + "\n")
            file.flush()
            os.fsync(file.fileno())

    def intend(self, name: str) -> None:
        self._append(step="intend", name=name, at=time.time())

    def created(self, name: str, queue_id: str) -> None:
        self._append(step="created", name=name, id=queue_id)

    def deleted(self, name: str) -> None:
        self._append(step="deleted", name=name)

    def pending(self) -> list[Created]:
        """The queues of this account that runs created (or meant to) and did not delete, oldest first."""
        state: dict[str, Created] = {}
        if not self.path.exists():
            return []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut by an interrupted write
            if (
                not isinstance(entry, dict)
                or entry.get("scope") != self.scope
                or not isinstance(entry.get("name"), str)
            ):
                continue
            name, step = entry["name"], entry.get("step")
            if step == "intend":
                state[name] = Created(name, None, float(entry.get("at") or 0.0))
            elif step == "created" and name in state:
                state[name] = Created(name, str(entry.get("id")), state[name].at)
            elif step == "deleted":
                state.pop(name, None)
        return sorted(state.values(), key=lambda created: created.at)
