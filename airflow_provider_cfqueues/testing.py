"""
Run asset watchers of Cloudflare queues in a test the way a triggerer runs them (Airflow 3.3+).

:class:`WatcherHarness` subscribes each watcher to Airflow's own ``SharedStreamManager`` with its
``shared_stream_key()``, runs its ``filter_shared_stream``, binds every event it fires to the raw
event it came from and confirms it stored, as the triggerer's supervisor does; the queue's pull loop
is the provider's, so routing, rejection, poison and acks happen as in production. Each harness is
one simulated triggerer process; two harnesses given one :class:`~.triggers.loop_registry.MemoryStore`
are two processes of one deployment::

    async def test_routing(cfqueues_emulator, cfqueues_connection):
        async with WatcherHarness() as triggerer:
            orders = triggerer.watch(orders_trigger, asset="orders")
            refunds = triggerer.watch(refunds_trigger, asset="refunds")
            await triggerer.until(lambda: len(triggerer.messages(orders)) == 2)
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .triggers.loop_registry import MemoryStore, RegistryStore
from .triggers.queue_loop import Directory, using_directory

__all__ = ["MemoryStore", "WatcherHarness"]

_trigger_ids = itertools.count(1)


class WatcherHarness:
    """
    One simulated triggerer: watchers on Airflow's ``SharedStreamManager``, events stored at once.

    :param store: the deployment's loop registry (share one between harnesses to simulate two
        triggerer processes; default: a registry of this harness alone).
    :param ack_timeout: Airflow's ``[triggerer] shared_stream_ack_timeout`` (seconds).
    :param heartbeat: seconds between the loops' heartbeats in the registry (short in tests).
    :param start_delay: seconds a new loop waits before its first pull (default: a heartbeat).
    :param where: the process's name in logs and errors.
    """

    def __init__(
        self,
        store: RegistryStore | None = None,
        *,
        ack_timeout: float = 60.0,
        heartbeat: float = 0.2,
        start_delay: float | None = None,
        where: str | None = None,
    ) -> None:
        from airflow.triggers.shared_stream import SharedStreamManager

        self.manager = SharedStreamManager(ack_timeout=ack_timeout)
        self.directory = Directory(
            store if store is not None else MemoryStore(),
            where=where or f"harness {id(self):x}",
            heartbeat=heartbeat,
            start_delay=heartbeat if start_delay is None else start_delay,
            alive_for=3 * heartbeat,
            remembered_for=30 * heartbeat,
            ack_timeout=ack_timeout,
        )
        #: trigger id -> the payloads of the events it fired (stored)
        self.events: dict[int, list[dict[str, Any]]] = {}
        #: trigger id -> the exception that ended it
        self.errors: dict[int, BaseException] = {}
        self._unconfirmed: list[int] = []
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._store_events: dict[int, bool] = {}

    def watch(
        self, trigger: Any, *, asset: str | None = None, store: bool = True, trigger_id: int | None = None
    ) -> int:
        """
        Start a watcher (a ``CloudflareQueuesMessageTrigger`` or the ``MessageQueueTrigger`` that makes
        one) and return its trigger id.

        :param asset: the name of the asset it watches (shown in the loop's logs and errors).
        :param store: ``False``: its events are never confirmed stored (an outage of the metadata
            database), so its messages come again after the ack timeout.
        :param trigger_id: its trigger id (default: a new one); give an earlier one to play a restart,
            where the same trigger rows come back.
        """
        from airflow.sdk import Asset
        from airflow.sdk.execution_time.context import AssetStateStoreAccessors

        trigger = getattr(trigger, "trigger", trigger)  # MessageQueueTrigger wraps the provider's trigger
        trigger_id = trigger_id if trigger_id is not None else next(_trigger_ids)
        trigger.trigger_id = trigger_id
        if asset is not None:
            trigger.asset_state_store = AssetStateStoreAccessors(inlets=[Asset(name=asset)])
        self.events[trigger_id] = []
        self._store_events[trigger_id] = store
        with using_directory(self.directory):  # the watcher's task (and its group's) find this process's loops
            self._tasks[trigger_id] = asyncio.ensure_future(self._run(trigger_id, trigger))
        return trigger_id

    async def _run(self, trigger_id: int, trigger: Any) -> None:
        key = trigger.shared_stream_key()
        try:
            if key is None:
                async for event in trigger.run():
                    self.events[trigger_id].append(event.payload)
                return
            stream = self.manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)
            async for event in trigger.filter_shared_stream(stream):
                seq = self.manager.bind_pending_event(trigger_id=trigger_id, key=key)
                if self._store_events[trigger_id]:
                    self.events[trigger_id].append(event.payload)
                    if seq is not None:
                        self._unconfirmed.append(seq)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # as in the triggerer: the trigger fails, the others go on
            self.errors[trigger_id] = err
        finally:
            if key is not None:
                await self.manager.unsubscribe(trigger_id, key)

    def messages(self, trigger_id: int) -> list[dict[str, Any]]:
        """The messages a watcher fired, in order."""
        return [m for payload in self.events[trigger_id] for m in payload["messages"]]

    async def confirm(self) -> None:
        """Confirm the events fired so far as stored (the supervisor's part), and let the loops run."""
        self.manager.confirm_persisted(self._unconfirmed)
        self._unconfirmed.clear()
        await asyncio.sleep(0.02)

    async def until(self, condition: Callable[[], bool], timeout: float = 20.0) -> None:
        """Confirm stored events until ``condition()`` holds; fail after ``timeout`` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s; watcher errors: {self.errors}")
            await self.confirm()
        await self.confirm()

    async def stop(self, trigger_id: int | None = None) -> None:
        """Stop one watcher, or all of them (and their loops)."""
        ids = [trigger_id] if trigger_id is not None else list(self._tasks)
        for each in ids:
            self._tasks[each].cancel()
        await asyncio.gather(*(self._tasks.pop(each) for each in ids), return_exceptions=True)
        if trigger_id is None:
            await self.manager.stop_all()
            await asyncio.gather(*self.directory.closing, return_exceptions=True)

    async def __aenter__(self) -> WatcherHarness:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.stop()
