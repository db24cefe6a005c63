"""A fault plan that follows a script, for tests that need a fault on one exact request."""

from __future__ import annotations

from airflow_provider_cfqueues.emulator.faults import FaultDecision, FaultPlan

_STATUS = {"error": 500, "throttle": 429, "html": 502}


class ScriptedFaults(FaultPlan):
    """``{"push_batch": [None, "error"]}``: the second push_batch request gets a 500, then no more faults."""

    def __init__(self, script: dict[str, list[str | None]], retry_after: int = 0) -> None:
        super().__init__()
        self.script = {endpoint: list(kinds) for endpoint, kinds in script.items()}
        self.retry_after = retry_after

    def decide(self, endpoint: str) -> FaultDecision:
        kinds = self.script.get(endpoint)
        kind = kinds.pop(0) if kinds else None
        if kind is not None:
            self.injected[(endpoint, kind)] += 1
        return FaultDecision(kind=kind, status=_STATUS.get(kind or "", 200), retry_after=self.retry_after)
