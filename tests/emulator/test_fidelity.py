"""
Where the emulator must behave like Cloudflare (shared/reference/cloudflare-queues-api.md §11): paused
delivery, administration endpoints driven by the official SDK, whole-second delays, the consumer's
retry delay on lease expiry, and both encodings of json bodies in pull answers.
"""

from __future__ import annotations

import base64
import json

import cloudflare
import pytest

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, ManualClock

from ..raw_api import RawApi

pytestmark = pytest.mark.airflow_agnostic  # the emulator alone: run in the Airflow 3 suite only


@pytest.fixture
def api(emulator: CloudflareQueuesEmulator) -> RawApi:
    return RawApi(emulator)


@pytest.fixture
def sdk(emulator: CloudflareQueuesEmulator) -> cloudflare.Cloudflare:
    return cloudflare.Cloudflare(api_token=emulator.token, base_url=emulator.base_url, max_retries=0)


def test_paused_delivery_keeps_pushes_and_refuses_pulls(
    emulator: CloudflareQueuesEmulator, api: RawApi, sdk: cloudflare.Cloudflare
) -> None:
    queue = emulator.create_queue("q")
    api.push(queue.id, {"a": 1})
    before = emulator.metrics("q")
    paused = sdk.queues.edit(queue.id, account_id=emulator.account_id, settings={"delivery_paused": True})
    assert paused is not None and paused.settings is not None and paused.settings.delivery_paused is True
    api.push(queue.id, {"a": 2})  # pushes are still accepted and stored
    status, answer = api.call("POST", f"/{queue.id}/messages/pull", {})
    assert status == 409 and "queue_delivery_paused" in answer["errors"][0]["message"]
    with pytest.raises(cloudflare.ConflictError):
        sdk.queues.messages.pull(queue.id, account_id=emulator.account_id)
    assert emulator.metrics("q")["backlog_count"] == before["backlog_count"] + 1  # the pull took nothing
    emulator.resume_delivery("q")
    assert len(api.pull(queue.id, batch_size=10)["messages"]) == 2
    emulator.pause_delivery("q")
    assert api.ok("GET", f"/{queue.id}")["settings"]["delivery_paused"] is True


def test_put_replaces_the_queue_settings_and_patch_merges_them(emulator: CloudflareQueuesEmulator, api: RawApi) -> None:
    queue = emulator.create_queue("q", delivery_delay=30, message_retention_period=3600)
    merged = api.ok("PATCH", f"/{queue.id}", {"settings": {"delivery_paused": True}})["settings"]
    assert merged == {"delivery_delay": 30, "delivery_paused": True, "message_retention_period": 3600}
    replaced = api.ok("PUT", f"/{queue.id}", {"queue_name": "q", "settings": {"delivery_delay": 5}})["settings"]
    assert replaced == {"delivery_delay": 5, "delivery_paused": False, "message_retention_period": 345_600}


def test_consumer_update_and_delete_with_the_sdk(
    emulator: CloudflareQueuesEmulator, sdk: cloudflare.Cloudflare
) -> None:
    account = emulator.account_id
    queue = emulator.create_queue("q", max_retries=5, dead_letter_queue="q-dlq")
    (consumer,) = sdk.queues.consumers.list(queue.id, account_id=account)
    assert consumer.consumer_id
    updated = sdk.queues.consumers.update(
        consumer.consumer_id,
        account_id=account,
        queue_id=queue.id,
        type="http_pull",
        settings={"batch_size": 20, "visibility_timeout_ms": 60_000},
    )
    assert updated is not None and updated.consumer_id == consumer.consumer_id
    wire = emulator.queue("q").consumer
    assert wire is not None and wire.settings == {
        "batch_size": 20,
        "max_retries": 3,  # a PUT replaces: settings not given take their defaults
        "retry_delay": 0,
        "visibility_timeout_ms": 60_000,
    }
    assert wire.dead_letter_queue == ""
    sdk.queues.consumers.delete(consumer.consumer_id, account_id=account, queue_id=queue.id)
    assert emulator.queue("q").consumer is None
    with pytest.raises(cloudflare.NotFoundError):
        sdk.queues.consumers.delete(consumer.consumer_id, account_id=account, queue_id=queue.id)


def test_purge_with_the_sdk(emulator: CloudflareQueuesEmulator, api: RawApi, sdk: cloudflare.Cloudflare) -> None:
    account = emulator.account_id
    queue = emulator.create_queue("q")
    assert sdk.queues.purge.status(queue.id, account_id=account) is not None
    assert api.ok("GET", f"/{queue.id}/purge") == {"started_at": None, "completed": None}
    api.batch(queue.id, [{"body": {"n": n}} for n in range(5)])
    leased = api.pull(queue.id, batch_size=2)["messages"]
    assert api.error("POST", f"/{queue.id}/purge", {})[:2] == (400, 10207)  # must confirm
    purged = sdk.queues.purge.start(queue.id, account_id=account, delete_messages_permanently=True)
    assert purged is not None and purged.queue_id == queue.id
    assert emulator.metrics("q")["backlog_count"] == 0
    status = api.ok("GET", f"/{queue.id}/purge")
    assert status["completed"] is True and status["started_at"].endswith("Z")
    late = api.ok("POST", f"/{queue.id}/messages/ack", {"acks": [{"lease_id": leased[0]["lease_id"]}]})
    assert late["ackCount"] == 0 and "no longer in the queue" in late["warnings"][leased[0]["lease_id"]]


def test_a_purge_runs_in_the_background_for_purge_seconds(
    emulator: CloudflareQueuesEmulator, api: RawApi, clock: ManualClock
) -> None:
    emulator.state.purge_seconds = 30
    queue = emulator.create_queue("q")
    api.batch(queue.id, [{"body": {"n": n}} for n in range(4)])
    api.ok("POST", f"/{queue.id}/purge", {"delete_messages_permanently": True})
    assert api.ok("GET", f"/{queue.id}/purge")["completed"] is False
    api.batch(queue.id, [{"body": "new", "content_type": "text"}])  # pushed while the purge runs: kept
    clock.advance(29)
    assert emulator.metrics("q")["backlog_count"] == 5 and api.ok("GET", f"/{queue.id}/purge")["completed"] is False
    clock.advance(1)
    assert api.ok("GET", f"/{queue.id}/purge")["completed"] is True
    assert [m.body for m in emulator.messages("q")] == ["new"]


def test_a_read_only_token_reads_and_changes_nothing(clock: ManualClock) -> None:
    with CloudflareQueuesEmulator(clock=clock, read_only_token="reader-1") as emulator:
        queue = emulator.create_queue("q")
        reader = RawApi(emulator, token="reader-1")
        assert reader.ok("GET", f"/{queue.id}")["queue_name"] == "q"
        assert reader.ok("GET", f"/{queue.id}/metrics")["backlog_count"] == 0
        assert reader.ok("GET", "")[0]["queue_name"] == "q"
        for method, suffix, body in [
            ("POST", "", {"queue_name": "r"}),
            ("PATCH", f"/{queue.id}", {"settings": {"delivery_paused": True}}),
            ("DELETE", f"/{queue.id}", None),
            ("POST", f"/{queue.id}/purge", {"delete_messages_permanently": True}),
            ("POST", f"/{queue.id}/messages", {"body": "x"}),
            ("POST", f"/{queue.id}/messages/pull", {}),
            ("DELETE", f"/{queue.id}/consumers/{emulator.queue('q').consumer.consumer_id}", None),
        ]:
            assert reader.error(method, suffix, body)[:2] == (403, 10000), (method, suffix)
        assert RawApi(emulator, token="reader-2").error("GET", f"/{queue.id}")[:2] == (403, 10000)
        assert emulator.metrics("q")["backlog_count"] == 0 and emulator.queue("q").consumer is not None


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        ("/messages", {"body": {"a": 1}, "delay_seconds": 1.5}, 10203),
        ("/messages/batch", {"messages": [{"body": {"a": 1}}], "delay_seconds": 0.5}, 10202),
        ("/messages/batch", {"messages": [{"body": {"a": 1}, "delay_seconds": 2.25}]}, 10203),
    ],
)
def test_fractional_delays_are_refused(
    emulator: CloudflareQueuesEmulator, api: RawApi, path: str, body: dict[str, object], code: int
) -> None:
    queue = emulator.create_queue("q")
    status, answer = api.call("POST", f"/{queue.id}{path}", body)
    assert (status, answer["errors"][0]["code"]) == (400, code)
    assert "whole number of seconds" in answer["errors"][0]["message"]
    assert emulator.metrics("q")["backlog_count"] == 0


def test_fractional_retry_delays_and_settings_are_refused(emulator: CloudflareQueuesEmulator, api: RawApi) -> None:
    queue = emulator.create_queue("q")
    api.push(queue.id, {"a": 1})
    (message,) = api.pull(queue.id)["messages"]
    retry = {"retries": [{"lease_id": message["lease_id"], "delay_seconds": 0.5}]}
    assert api.error("POST", f"/{queue.id}/messages/ack", retry)[:2] == (400, 10203)
    assert api.error("PATCH", f"/{queue.id}", {"settings": {"delivery_delay": 1.5}})[:2] == (400, 100128)
    other = emulator.create_queue("other", http_pull=False)
    consumer = {"type": "http_pull", "settings": {"retry_delay": 2.5}}
    assert api.error("POST", f"/{other.id}/consumers", consumer)[:2] == (400, 100127)


def test_the_consumer_retry_delay_applies_when_a_lease_expires(
    emulator: CloudflareQueuesEmulator, api: RawApi, clock: ManualClock
) -> None:
    queue = emulator.create_queue("q", retry_delay=60, visibility_timeout_ms=10_000)
    api.push(queue.id, {"a": 1})
    assert len(api.pull(queue.id)["messages"]) == 1
    clock.advance(10)  # the lease expires: an implicit failure
    assert api.pull(queue.id)["messages"] == []  # back only after the consumer's retry_delay
    (view,) = emulator.messages("q")
    assert (view.state, view.visible_at - clock.now()) == ("delayed", 60)
    clock.advance(60)
    assert [m["attempts"] for m in api.pull(queue.id)["messages"]] == [2]


@pytest.mark.parametrize("mode", ["base64", "plain", "mixed"])
def test_json_bodies_in_pull_answers(mode: str, clock: ManualClock) -> None:
    with CloudflareQueuesEmulator(clock=clock, json_bodies=mode) as emulator:
        queue = emulator.create_queue("q")
        api = RawApi(emulator)
        bodies = [{"n": n, "text": "ü"} for n in range(40)]
        api.batch(queue.id, [{"body": body} for body in bodies] + [{"body": "plain text", "content_type": "text"}])
        pulled = api.pull(queue.id, batch_size=100)["messages"]
        forms = set()
        decoded = []
        for message in pulled:
            if message["metadata"]["CF-Content-Type"] == "text":
                assert message["body"] == "plain text"
                continue
            raw = message["body"]
            plain = raw.startswith("{")
            forms.add("plain" if plain else "base64")
            decoded.append(json.loads(raw if plain else base64.b64decode(raw)))
        assert sorted(decoded, key=lambda b: b["n"]) == bodies
        assert forms == ({"base64", "plain"} if mode == "mixed" else {mode})


def test_json_bodies_must_be_a_known_mode() -> None:
    with pytest.raises(ValueError, match="json_bodies must be one of base64, plain, mixed"):
        CloudflareQueuesEmulator(json_bodies="hex")


def test_all_tokens_of_an_account_share_its_api_budget(clock: ManualClock) -> None:
    """The budget is per user, across all of the user's tokens: the emulator's user is the account."""
    with CloudflareQueuesEmulator(clock=clock, rate_limit="4/300", read_only_token="reader") as emulator:
        writer, reader = RawApi(emulator), RawApi(emulator, token="reader")
        for api in (writer, reader, writer, reader):
            api.ok("GET")
        status, code, _ = writer.error("GET")
        assert (status, code) == (429, 971)
        assert reader.call("GET")[0] == 429  # the other token is blocked too


def test_the_free_plan_keeps_messages_a_day_and_counts_operations(clock: ManualClock) -> None:
    with CloudflareQueuesEmulator(clock=clock, plan="free") as emulator:
        api = RawApi(emulator)
        assert api.error("POST", "", {"queue_name": "week", "settings": {"message_retention_period": 172_800}})[:2] == (
            400,
            100128,
        )
        queue = emulator.create_queue("orders")
        assert api.ok("GET", f"/{queue.id}")["settings"]["message_retention_period"] == 86_400  # the cap by default
        emulator.app.operations.limit = 10  # type: ignore[union-attr]  # 10 instead of 10,000 a day
        api.batch(queue.id, [{"body": n} for n in range(6)])  # 6 written
        leases = [m["lease_id"] for m in api.pull(queue.id, batch_size=3)["messages"]]  # 3 read: 9
        api.ack(queue.id, leases[:1])  # 1 deleted: 10
        status, payload = api.call("POST", f"/{queue.id}/messages", {"body": 1})
        assert (status, payload["errors"][0]["code"]) == (429, 10253)
        assert "operations of today (Free plan)" in payload["errors"][0]["message"]
        clock.advance(86_400)  # a new UTC day
        api.push(queue.id, 1)
    with pytest.raises(ValueError, match="plan must be one of paid, free"):
        CloudflareQueuesEmulator(plan="enterprise")


def test_the_free_plan_counts_as_cloudflare_documents_and_never_accepts_a_request_in_part(clock: ManualClock) -> None:
    """Every 64 KB written, read or deleted is one operation; peeks read and purges delete (the docs are
    silent: the stricter reading); a request that needs more than is left is refused whole."""
    with CloudflareQueuesEmulator(clock=clock, plan="free") as emulator:
        api = RawApi(emulator)
        queue = emulator.create_queue("orders")
        emulator.app.operations.limit = 20  # type: ignore[union-attr]
        big = "x" * 100_000  # two 64 KB units
        api.batch(queue.id, [{"body": big, "content_type": "text"}, {"body": 1}])  # 2 + 1 = 3 written
        peeked = api.ok("POST", f"/{queue.id}/messages/peek", {"batch_size": 2})["messages"]  # 2 read: 5
        api.ok("POST", f"/{queue.id}/messages/purge", {"refs": [{"ref": peeked[1]["ref"]}]})  # 1 deleted: 6
        api.batch(queue.id, [{"body": n} for n in range(12)])  # 12 written: 18
        status, payload = api.call(
            "POST", f"/{queue.id}/messages/batch", {"messages": [{"body": 1}, {"body": 2}, {"body": 3}]}
        )
        assert (status, payload["errors"][0]["code"]) == (429, 10253)  # 3 needed, 2 left: none of it
        assert emulator.metrics("orders")["backlog_count"] == 13
        pulled = api.pull(queue.id, batch_size=10)["messages"]
        assert len(pulled) == 2  # as many as the day has left (2 reads): 20
        status, payload = api.call("POST", f"/{queue.id}/messages/ack", {"acks": [{"lease_id": pulled[0]["lease_id"]}]})
        assert (status, payload["errors"][0]["code"]) == (429, 10253)  # nothing left to delete with
        assert emulator.stats()["queues"][0]["acked"] == 0
