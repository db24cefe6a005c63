"""A bare HTTP client for the emulator tests: sends exactly what it is told, parses nothing."""

from __future__ import annotations

import json
from typing import Any

import requests

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator


class RawApi:
    def __init__(self, emulator: CloudflareQueuesEmulator, token: str | None = None) -> None:
        self.base = f"{emulator.base_url}/accounts/{emulator.account_id}/queues"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token or emulator.token}"

    def call(
        self,
        method: str,
        suffix: str = "",
        body: Any = None,
        *,
        raw: bytes | None = None,
        params: dict[str, Any] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        response = self.session.request(
            method,
            self.base + suffix,
            data=data,
            params=params,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        return response.status_code, response.json()

    def ok(self, method: str, suffix: str = "", body: Any = None, **kwargs: Any) -> Any:
        status, payload = self.call(method, suffix, body, **kwargs)
        assert status == 200 and payload["success"], (status, payload)
        return payload["result"]

    def push(self, queue_id: str, body: Any, **fields: Any) -> Any:
        return self.ok("POST", f"/{queue_id}/messages", {"body": body, **fields})

    def batch(self, queue_id: str, messages: list[dict[str, Any]], **fields: Any) -> Any:
        return self.ok("POST", f"/{queue_id}/messages/batch", {"messages": messages, **fields})

    def pull(self, queue_id: str, **fields: Any) -> Any:
        return self.ok("POST", f"/{queue_id}/messages/pull", fields)

    def ack(self, queue_id: str, acks: list[str] = (), retries: list[Any] = ()) -> Any:  # type: ignore[assignment]
        body = {
            "acks": [{"lease_id": lease} for lease in acks],
            "retries": [r if isinstance(r, dict) else {"lease_id": r} for r in retries],
        }
        return self.ok("POST", f"/{queue_id}/messages/ack", body)

    def metrics(self, queue_id: str) -> Any:
        return self.ok("GET", f"/{queue_id}/metrics")

    def error(self, method: str, suffix: str = "", body: Any = None, **kwargs: Any) -> tuple[int, int, str]:
        status, payload = self.call(method, suffix, body, **kwargs)
        assert payload["success"] is False, payload
        error = payload["errors"][0]
        return status, error["code"], error["message"]
