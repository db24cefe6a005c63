"""R2 event notifications in the emulator: rules as the service keeps them (over HTTP and in process),
and object events that deliver the documented message to every queue whose rule matches, and nothing
otherwise."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests

from airflow_provider_cfqueues.api.events import R2ObjectEvent, read_event
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.emulator.r2 import RuleError


def delivered(emulator: CloudflareQueuesEmulator, queue: str) -> list[dict[str, Any]]:
    return [json.loads(base64.b64decode(m.body)) for m in emulator.messages(queue)]


def test_only_the_objects_a_rule_matches_reach_its_queue(emulator: CloudflareQueuesEmulator) -> None:
    emulator.create_queue("loads")
    emulator.create_queue("archive")
    emulator.add_r2_notification_rule("uploads", "loads", prefix="in/", suffix=".csv")
    emulator.add_r2_notification_rule("uploads", "archive", ["DeleteObject"], prefix="in/")
    for n in range(25):
        emulator.r2_object_event("uploads", f"in/{n}.csv", size=100 + n)
        emulator.r2_object_event("uploads", f"out/{n}.csv", size=100 + n)
    emulator.r2_object_event("uploads", "in/notes.txt", size=5)
    emulator.r2_object_event("elsewhere", "in/0.csv", size=1)
    emulator.r2_object_event("uploads", "in/3.csv", "DeleteObject")
    emulator.r2_object_event("uploads", "in/4.csv", "CopyObject", size=104, copy_source=("staging", "x/4.csv"))
    loads = [read_event(body).event for body in delivered(emulator, "loads")]
    assert all(isinstance(event, R2ObjectEvent) for event in loads)
    assert sorted(e.key for e in loads if e.action == "PutObject") == sorted(f"in/{n}.csv" for n in range(25))
    (copied,) = [e for e in loads if e.action == "CopyObject"]
    assert (copied.copy_source_bucket, copied.copy_source_key, copied.size) == ("staging", "x/4.csv", 104)
    (deleted,) = [read_event(body).event for body in delivered(emulator, "archive")]
    assert isinstance(deleted, R2ObjectEvent) and deleted.deleted and (deleted.size, deleted.etag) == (None, None)
    assert deleted.account == emulator.account_id and deleted.bucket == "uploads"


def test_overlapping_rules_are_refused(emulator: CloudflareQueuesEmulator) -> None:
    emulator.create_queue("a")
    emulator.create_queue("b")
    emulator.add_r2_notification_rule("uploads", "a", prefix="in/", suffix=".csv")
    emulator.add_r2_notification_rule("uploads", "b", prefix="in/", suffix=".json")  # other keys: fine
    emulator.add_r2_notification_rule("uploads", "b", ["DeleteObject"], prefix="in/")  # other action: fine
    for prefix, suffix in (("in/2026/", ".csv"), ("", ""), ("in/", None)):
        with pytest.raises(RuleError, match="overlaps"):
            emulator.add_r2_notification_rule("uploads", "b", prefix=prefix or None, suffix=suffix)
    emulator.add_r2_notification_rule("other-bucket", "b", prefix="in/", suffix=".csv")  # another bucket


def test_rules_over_http_as_the_service_keeps_them(emulator: CloudflareQueuesEmulator) -> None:
    queue = emulator.create_queue("loads")
    base = f"{emulator.base_url}/accounts/{emulator.account_id}/event_notifications/r2/uploads/configuration"
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {emulator.token}"

    def call(method: str, path: str = "", body: Any = None, **headers: str) -> tuple[int, Any]:
        answer = http.request(method, base + path, data=None if body is None else json.dumps(body), headers=headers)
        return answer.status_code, answer.json()

    rules = {"rules": [{"actions": ["PutObject"], "prefix": "in/", "description": "csv in"}]}
    assert call("PUT", f"/queues/{queue.id}", rules)[0] == 200
    assert call("PUT", f"/queues/{queue.id}", {"rules": [{"actions": ["DeleteObject"]}]})[0] == 200
    status, listing = call("GET")
    assert status == 200 and listing["result"]["bucketName"] == "uploads"
    (entry,) = listing["result"]["queues"]
    assert (entry["queueId"], entry["queueName"], len(entry["rules"])) == (queue.id, "loads", 2)
    first, second = entry["rules"]
    assert (first["actions"], first["prefix"], first["description"]) == (["PutObject"], "in/", "csv in")
    status, refused = call("PUT", f"/queues/{queue.id}", {"rules": [{"actions": ["PutObject"], "prefix": "in/x"}]})
    assert status == 400 and "overlaps" in refused["errors"][0]["message"]
    assert call("GET", **{"cf-r2-jurisdiction": "eu"})[1]["result"]["queues"] == []  # another jurisdiction
    assert call("GET", **{"cf-r2-jurisdiction": "mars"})[0] == 400
    # DELETE with rule ids removes those; without a body, every rule of the queue on the bucket
    assert call("DELETE", f"/queues/{queue.id}", {"ruleIds": [second["ruleId"]]})[0] == 200
    status, one = call("GET", f"/queues/{queue.id}")
    assert [r["ruleId"] for r in one["result"]["rules"]] == [first["ruleId"]]
    assert call("DELETE", f"/queues/{queue.id}")[0] == 200
    assert call("GET")[1]["result"]["queues"] == []
    assert call("PUT", f"/queues/{'0' * 32}", rules)[0] == 404  # no such queue
    assert emulator.r2_object_event("uploads", "in/a.csv", size=1) == []  # no rule left: nothing delivered


def test_a_deleted_queue_takes_its_rules(emulator: CloudflareQueuesEmulator) -> None:
    emulator.create_queue("gone")
    emulator.add_r2_notification_rule("uploads", "gone")
    requests.delete(
        f"{emulator.base_url}/accounts/{emulator.account_id}/queues/{emulator.queue('gone').queue_id}",
        headers={"Authorization": f"Bearer {emulator.token}"},
        timeout=10,
    ).raise_for_status()
    assert emulator.app.r2[emulator.account_id].of_bucket("default", "uploads") == {}
