"""
Where the pull loops of a queue publish themselves, so that loops in different triggerer processes
see each other (:func:`~airflow_provider_cfqueues.api.loop_rules.deployment_verdict` decides from it).

In a triggerer the registry is Airflow's **Variables** table, the one deployment-wide store a trigger can
write and list (through the triggerer's supervisor, as every trigger's Variable access goes): one
Variable per loop, ``cfqueues.loops.<queue hash>.<loop id>``, holding a small JSON entry. Outside a
triggerer (``run()`` in a test, the :mod:`~airflow_provider_cfqueues.testing` harness) it is a dict
in memory, which tests may share between two simulated processes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Protocol

from ..api.loop_rules import LoopEntry

#: every loop entry's Variable key starts with this
KEY_PREFIX = "cfqueues.loops."
_DESCRIPTION = (
    "airflow-provider-cfqueues: a message-trigger pull loop of one queue (deleted when it stops; "
    "see docs/airflow.md, 'One queue, many DAGs')"
)


def queue_prefix(scope: str, account_id: str, queue_id: str) -> str:
    """The key prefix of one queue's entries (the API URL, account and queue id, hashed: no secrets)."""
    digest = hashlib.sha256(f"{scope}\n{account_id}\n{queue_id}".encode()).hexdigest()[:24]
    return f"{KEY_PREFIX}{digest}."


class RegistryStore(Protocol):
    """Keyed JSON text, listable by prefix."""

    async def put(self, key: str, value: str) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def read(self, prefix: str) -> dict[str, str]: ...

    async def keys(self, prefix: str) -> list[str]: ...


class MemoryStore:
    """The registry of one process, or of several simulated ones that share it (tests)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def put(self, key: str, value: str) -> None:
        self.values[key] = value

    async def delete(self, key: str) -> None:
        self.values.pop(key, None)

    async def read(self, prefix: str) -> dict[str, str]:
        return {k: v for k, v in self.values.items() if k.startswith(prefix)}

    async def keys(self, prefix: str) -> list[str]:
        return [k for k in self.values if k.startswith(prefix)]


class VariableStore:
    """Airflow Variables, through the triggerer's supervisor (Airflow 3)."""

    def __init__(self, comms: Any) -> None:
        self.comms = comms

    async def put(self, key: str, value: str) -> None:
        from airflow.sdk.execution_time.comms import PutVariable

        await self.comms.asend(PutVariable(key=key, value=value, description=_DESCRIPTION))

    async def delete(self, key: str) -> None:
        from airflow.sdk.execution_time.comms import DeleteVariable

        await self.comms.asend(DeleteVariable(key=key))

    async def keys(self, prefix: str) -> list[str]:
        """The keys under ``prefix`` (read from the metadata database only, never a secrets backend)."""
        from airflow.sdk.execution_time.comms import GetVariableKeys

        keys: list[str] = []
        while True:
            answer = await self.comms.asend(GetVariableKeys(prefix=prefix, limit=1000, offset=len(keys)))
            page = list(getattr(answer, "keys", None) or [])
            keys.extend(page)
            if len(page) < 1000:
                return keys

    async def read(self, prefix: str) -> dict[str, str]:
        from airflow.sdk.execution_time.comms import GetVariable

        values = {}
        for key in await self.keys(prefix):
            answer = await self.comms.asend(GetVariable(key=key))
            value = getattr(answer, "value", None)
            if isinstance(value, str):
                values[key] = value
        return values


#: the registry of this process when it is not a triggerer
_MEMORY = MemoryStore()


def default_store() -> RegistryStore:
    """Variables in a triggerer (where the supervisor channel is set up), this process's memory elsewhere."""
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError:  # Airflow 2
        return _MEMORY
    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    return _MEMORY if comms is None else VariableStore(comms)


def decode_entries(values: Mapping[str, str]) -> dict[str, LoopEntry]:
    """The entries among ``values`` (anything else under the prefix is ignored)."""
    entries = {}
    for key, text in values.items():
        try:
            entry = LoopEntry.from_json(json.loads(text))
        except ValueError:
            entry = None
        if entry is not None:
            entries[key] = entry
    return entries
