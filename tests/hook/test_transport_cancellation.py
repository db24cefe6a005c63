"""The async transport never drops a cancellation that arrives as the answer does (CPython gh-86296)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from airflow_provider_cfqueues.api.operations import PULL_ANSWER, ApiRequest
from airflow_provider_cfqueues.hooks import transport


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is Python 3.11+")
def test_a_cancellation_that_meets_the_answer_still_cancels(monkeypatch: pytest.MonkeyPatch) -> None:
    steps: list[asyncio.Task[Any]] = []

    async def answered_as_cancelled(*args: Any) -> str:
        steps[0].cancel()  # the trigger is cancelled just as the answer comes back
        return "answer"

    monkeypatch.setattr(transport, "_exchange", answered_as_cancelled)

    async def trigger_step() -> str:
        steps.append(asyncio.current_task())  # type: ignore[arg-type]
        pull = ApiRequest("pull", "POST", "x", answer=PULL_ANSWER)
        answer = await transport.send_async(None, "http://127.0.0.1:1", pull, "t", 5.0)  # type: ignore[arg-type]
        await asyncio.sleep(0)  # the next step of a cancelled task must not run
        return answer

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(trigger_step())
