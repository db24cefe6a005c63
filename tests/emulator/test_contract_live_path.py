"""
The contract suite's live path (``make contract``), run against an emulator process standing in for a
Cloudflare account: both targets, pacing and counting, cleanup, a bystander queue left alone, the report.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, EmulatorProcess

from ..contract.ledger import ForeignQueueError, Ledger
from ..contract.target import Target
from ..helpers import point_connection

REPO = Path(__file__).resolve().parents[2]
LIVE_TOKEN = "contract-live-token-5d1c"
LIVE_ACCOUNT = "9f86d081884c7d659a2feaa0c55ad015"
# a few cases that wait little in real time but cover the harness: both targets, a service-made
# dead-letter queue to clean up, a consumer awaited with a probe, the hook and raw HTTP
QUICK_CASES = "push_accepts or bodies or paused or missing_new or with_dead_letter"


def live_env(base_url: str) -> dict[str, str]:
    """The settings of ``make contract`` for an account at ``base_url`` (this file's token and account)."""
    return {
        "CFQUEUES_CONTRACT_TOKEN": LIVE_TOKEN,
        "CFQUEUES_CONTRACT_ACCOUNT_ID": LIVE_ACCOUNT,
        "CFQUEUES_CONTRACT_BASE_URL": base_url,
        "CFQUEUES_CONTRACT_PACE": "0.01",
    }


def _contract_run(env: dict[str, str], report_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/contract",
        "-q",
        "-p",
        "no:cacheprovider",
        "--contract-target=live",
        f"--contract-report={report_dir}",
        *args,
    ]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CFQUEUES_CONTRACT_", "PYTEST_"))}
    record = {"CFQUEUES_CONTRACT_RECORD": str(report_dir / "created.jsonl")}  # not the repository's
    return subprocess.run(
        command, cwd=REPO, env={**clean, **record, **env}, capture_output=True, text=True, timeout=600
    )


# one Airflow version is enough for the harness: the cases themselves run on both in tests/contract
@pytest.mark.airflow3
def test_a_live_run_compares_each_case_with_the_emulator_and_cleans_up(tmp_path: Path) -> None:
    with EmulatorProcess(["bystander"], token=LIVE_TOKEN, account_id=LIVE_ACCOUNT) as account:
        api = f"{account.base_url}/accounts/{LIVE_ACCOUNT}/queues"
        headers = {"Authorization": f"Bearer {LIVE_TOKEN}"}
        bystander = account.queue_ids["bystander"]
        requests.post(f"{api}/{bystander}/messages", json={"body": {"keep": True}}, headers=headers, timeout=10)
        env = live_env(account.base_url)
        result = _contract_run(env, tmp_path, "-k", QUICK_CASES)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        from ..contract.created import CreatedRecord, account_scope

        record = CreatedRecord(tmp_path / "created.jsonl", account_scope(account.base_url, LIVE_ACCOUNT))
        assert record.path.exists() and record.pending() == []  # each queue recorded, then recorded deleted
        queues = requests.get(api, headers=headers, timeout=10).json()["result"]
        assert [queue["queue_name"] for queue in queues] == ["bystander"]  # every queue of the run deleted
        metrics = requests.get(f"{api}/{bystander}/metrics", headers=headers, timeout=10).json()["result"]
        assert metrics["backlog_count"] == 1  # and the bystander untouched
    assert "[live]" in result.stdout or " passed" in result.stdout
    summary = next(line for line in result.stdout.splitlines() if line.startswith("contract suite against live"))
    assert "requests counted by the API budget: " in summary
    report = json.loads((tmp_path / "contract-report.json").read_text())
    assert report["target"] == "live" and report["host"] == account.base_url
    assert report["requests"]["counted_by_the_api_budget"] > 0 and report["leftover_queues"] == []
    # the "account" is an emulator with the same settings, so every observation must match
    assert report["summary"]["emulator_differed"] == 0 and report["summary"]["no_reference"] == 0
    assert {
        "push_accepts_text_and_json_and_answers_metrics",
        "max_retries_with_dead_letter_queue",
        "paused_delivery",
        "pull_consumers_missing_new_and_second",
    } <= {row["case"] for row in report["cases"]}
    assert all("live" in row and "emulator" in row for row in report["cases"])
    table = (tmp_path / "contract-report.md").read_text()
    assert "| case | check | kind | expectation | live | emulator | emulator matched |" in table
    for text in (result.stdout, result.stderr, table, json.dumps(report)):
        assert LIVE_TOKEN not in text and LIVE_ACCOUNT not in text


@pytest.mark.airflow3
def test_without_credentials_the_live_run_is_skipped_with_one_line(tmp_path: Path) -> None:
    result = _contract_run({}, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    reasons = [line for line in result.stdout.splitlines() if line.startswith("contract suite skipped")]
    assert reasons == [
        "contract suite skipped: set CFQUEUES_CONTRACT_TOKEN and CFQUEUES_CONTRACT_ACCOUNT_ID to run it against "
        "a Cloudflare account (docs/emulator.md#the-contract-suite)"
    ]
    assert not (tmp_path / "contract-report.json").exists()


def test_a_case_that_fails_half_way_still_deletes_its_queues(
    emulator: CloudflareQueuesEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_connection(monkeypatch, emulator, "cfqueues_contract")
    bystander = emulator.create_queue("bystander")
    target = Target(
        kind="emulator",
        base_url=emulator.base_url,
        token=emulator.token,
        account_id=emulator.account_id,
        ledger=Ledger(),
        wait=emulator.clock.advance,  # type: ignore[attr-defined]
        now=emulator.clock.now,
        prefix="cfq-contract-test-000",
        case="fails",
        checks=[],
        emulator_reading={},
    )
    with pytest.raises(AssertionError, match="the case failed"):
        _fail_half_way(target, bystander.id)
    assert target.cleanup() == []  # what the contract fixture does when a case ends, passed or failed
    queues, _ = emulator.app.state.list_queues(emulator.account_id)
    assert [queue["queue_name"] for queue in queues] == ["bystander"]


def _fail_half_way(target: Target, bystander_id: str) -> None:
    dead_letters = target.dead_letter_queue_name("dlq")
    queue = target.queue("q", max_retries=0, dead_letter_queue=dead_letters)
    target.hook.push_message("m", queue=queue.id)
    [message] = target.collect(queue, 1)
    target.ack(queue, retries=[{"lease_id": message["lease_id"], "delay_seconds": 0}])  # to the service-made DLQ
    target.queue("unused", consumer=False)
    with pytest.raises(ForeignQueueError):
        target.call("DELETE", f"/{bystander_id}")
    raise AssertionError("the case failed")


@pytest.mark.airflow3
def test_a_live_run_never_prints_the_token_stops_in_time_and_names_what_it_left(tmp_path: Path) -> None:
    """
    Against an emulator standing in for a production account (a bystander queue with a message; its budget
    shared with production traffic, 40 requests per 5 minutes): every metrics answer is lost (the connection
    drops) and pytest runs with -l (frames' locals shown). Neither the token nor the account id reaches the
    output or the report; the run stops before the account's budget falls below a quarter; every queue it
    created is deleted from the cleanup reserve; the bystander is untouched.
    """
    extra = ["--rate-limit", "40/300", "--fault", "metrics:lost=1.0"]
    with EmulatorProcess(["bystander"], token=LIVE_TOKEN, account_id=LIVE_ACCOUNT, extra_args=extra) as account:
        api = f"{account.base_url}/accounts/{LIVE_ACCOUNT}/queues"
        headers = {"Authorization": f"Bearer {LIVE_TOKEN}"}
        bystander = account.queue_ids["bystander"]
        requests.post(f"{api}/{bystander}/messages", json={"body": {"keep": True}}, headers=headers, timeout=10)
        env = live_env(account.base_url)
        result = _contract_run(env, tmp_path, "-l", "--tb=long", "-k", QUICK_CASES)
        queues = requests.get(api, headers=headers, timeout=10).json()["result"]
        kept = requests.post(f"{api}/{bystander}/messages/pull", json={}, headers=headers, timeout=10).json()
    output = result.stdout + result.stderr
    assert (result.returncode != 0 and "RemoteDisconnected" in output) or "ConnectionError" in output, output[-3000:]
    report = json.loads((tmp_path / "contract-report.json").read_text())
    table = (tmp_path / "contract-report.md").read_text()
    for text in (output, table, json.dumps(report)):
        assert LIVE_TOKEN not in text and LIVE_ACCOUNT not in text
    assert "contract run stopped early: the account's API budget has" in output
    assert report["stopped_early"].startswith("the account's API budget has")
    assert [queue["queue_name"] for queue in queues] == ["bystander"] and report["leftover_queues"] == []
    assert [message["attempts"] for message in kept["result"]["messages"]] == [1]  # untouched until now


def _cleanup(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CFQUEUES_CONTRACT_")}
    return subprocess.run(
        [sys.executable, "-m", "tests.contract.cleanup", *args],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.airflow3  # the harness is the same on every Airflow: once is enough
def test_cleanup_deletes_only_what_runs_recorded_creating(tmp_path: Path) -> None:
    from ..contract.created import CreatedRecord, account_scope

    names = [
        "cfq-contract-0123abcd-000-q",  # a run created it and recorded its id
        "cfq-contract-0123abcd-001-dlq",  # the service made it for a run (name recorded, no id)
        "cfq-contract-deadbeef-001-customer-orders",  # someone else's, named like a run's: never recorded
        "orders",
    ]
    with EmulatorProcess(names, token=LIVE_TOKEN, account_id=LIVE_ACCOUNT) as account:
        api = f"{account.base_url}/accounts/{LIVE_ACCOUNT}/queues"
        auth = {"Authorization": f"Bearer {LIVE_TOKEN}"}

        def queues() -> dict[str, str]:
            return {
                q["queue_name"]: q["queue_id"] for q in requests.get(api, headers=auth, timeout=10).json()["result"]
            }

        ids = queues()
        record = CreatedRecord(tmp_path / "created.jsonl", account_scope(account.base_url, LIVE_ACCOUNT))
        record.intend("cfq-contract-0123abcd-000-q")
        record.created("cfq-contract-0123abcd-000-q", ids["cfq-contract-0123abcd-000-q"])
        record.intend("cfq-contract-0123abcd-001-dlq")
        record.intend("cfq-contract-0123abcd-002-x")  # its id now carries another name: left alone
        record.created("cfq-contract-0123abcd-002-x", ids["orders"])
        record.intend("cfq-contract-0123abcd-003-never")  # the run died before the service made it
        env = {**live_env(account.base_url), "CFQUEUES_CONTRACT_RECORD": str(tmp_path / "created.jsonl")}

        listed = _cleanup(env)  # without --yes: a list, nothing deleted
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert sorted(queues()) == sorted(names)
        assert "would delete: cfq-contract-0123abcd-000-q (recorded id, same name)" in listed.stdout
        assert "would delete: cfq-contract-0123abcd-001-dlq (found by name" in listed.stdout
        assert "skipped: cfq-contract-0123abcd-002-x (its id now carries the name 'orders'" in listed.stdout
        assert "customer-orders" not in listed.stdout and "nothing deleted" in listed.stdout

        result = _cleanup(env, "--yes")
        left = queues()
        again = _cleanup(env, "--yes")  # the record says they are gone: nothing left to do
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(left) == ["cfq-contract-deadbeef-001-customer-orders", "orders"]
    assert "2 queue(s) of earlier runs deleted, 0 not" in result.stdout
    assert "0 queue(s) of earlier runs deleted" in again.stdout and "would delete" not in again.stdout
    assert LIVE_TOKEN not in result.stdout + result.stderr + listed.stdout + listed.stderr


class _Answers(http.server.BaseHTTPRequestHandler):
    """A loopback server: redirects every request elsewhere, answers 503 with an HTML page, or drips."""

    mode = "redirect"
    target = ""
    seen: list[str] = []

    def _answer(self) -> None:
        type(self).seen.append(f"{self.command} {self.path}")
        if self.mode == "drip":  # a valid start, then one byte every half second, forever
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(600):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.5)
            except OSError:
                return
            return
        if self.mode == "redirect":
            self.send_response(307)
            self.send_header("Location", f"{self.target}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            page = b"<html><body>503 Service Temporarily Unavailable</body></html>"
            self.send_response(503)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _server(mode: str, target: str = "") -> Iterator[tuple[str, list[str]]]:
    handler = type("Handler", (_Answers,), {"mode": mode, "target": target, "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/client/v4", handler.seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.airflow3
def test_the_harness_and_the_cleanup_never_follow_a_redirect_and_name_an_html_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ..contract.created import CreatedRecord, account_scope
    from ..contract.target import CONN_ID

    with (
        _server("html") as (elsewhere, reached),
        _server("redirect", elsewhere.removesuffix("/client/v4")) as (
            redirecting,
            _,
        ),
    ):
        ledger = Ledger()
        connection = {"conn_type": "cloudflare_queues", "host": redirecting, "password": LIVE_TOKEN}
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({**connection, "extra": {"account_id": LIVE_ACCOUNT}})
        )
        target = Target(
            kind="live",
            base_url=redirecting,
            token=LIVE_TOKEN,
            account_id=LIVE_ACCOUNT,
            ledger=ledger,
            wait=lambda seconds: None,
            now=lambda: 0.0,
            prefix="cfq-contract-0badf00d-000",
            case="redirects",
            checks=[],
            emulator_reading={},
        )
        with pytest.raises(requests.RequestException, match=r"HTTP 307 from GET .*a redirect .*not followed"):
            target.call("GET", "")
        for base_url in (redirecting, elsewhere):
            record = CreatedRecord(tmp_path / "created.jsonl", account_scope(base_url, LIVE_ACCOUNT))
            record.intend("cfq-contract-0badf00d-000-a")
            record.created("cfq-contract-0badf00d-000-a", "0123456789abcdef0123456789abcdef")
        env = {**live_env(redirecting), "CFQUEUES_CONTRACT_RECORD": str(tmp_path / "created.jsonl")}
        redirected = _cleanup(env, "--yes")
        assert reached == []  # nothing reached the other origin
        html = _cleanup({**env, "CFQUEUES_CONTRACT_BASE_URL": elsewhere}, "--yes")
    assert redirected.returncode == 1 and "RedirectRefusedError: HTTP 307 from GET" in redirected.stdout
    assert html.returncode == 1 and "HTTP 503, not a JSON answer: '<html><body>503 Service" in html.stdout
    assert "deleted" not in redirected.stdout + html.stdout


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ({"CFQUEUES_CONTRACT_PACE": "nan"}, "CFQUEUES_CONTRACT_PACE=nan: give the seconds between counted requests"),
        ({"CFQUEUES_CONTRACT_PACE": "0"}, "at least 0.01"),
        ({"CFQUEUES_CONTRACT_BASE_URL": "http://api.example.com/client/v4"}, "the token goes over https only"),
    ],
)
def test_a_live_run_refuses_no_pacing_and_plain_http_to_another_host(
    monkeypatch: pytest.MonkeyPatch, setting: dict[str, str], words: str
) -> None:
    """What the contract suite checks before its first request (the next test runs one refusal end to end)."""
    from ..contract import conftest as contract

    for name, value in {**live_env("https://api.cloudflare.com/client/v4"), **setting}.items():
        monkeypatch.setenv(name, value)

    def check_the_settings() -> None:  # as the contract suite does when it starts
        contract._live_ledger()
        contract._live_credentials()

    with pytest.raises(pytest.UsageError, match=re.escape(words)) as refused:
        check_the_settings()
    assert LIVE_TOKEN not in str(refused.value) and LIVE_ACCOUNT not in str(refused.value)


@pytest.mark.airflow3
def test_a_live_run_over_plain_http_to_another_host_stops_before_its_first_request(tmp_path: Path) -> None:
    result = _contract_run(live_env("http://api.example.com/client/v4"), tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "the token goes over https only" in output, output[-2000:]
    assert LIVE_TOKEN not in output and not (tmp_path / "contract-report.json").exists()


@pytest.mark.airflow3
def test_a_server_dripping_its_answer_cannot_hold_the_cleanup_past_its_deadline(tmp_path: Path) -> None:
    from ..contract.created import CreatedRecord, account_scope

    with _server("drip") as (dripping, reached):
        record = CreatedRecord(tmp_path / "created.jsonl", account_scope(dripping, LIVE_ACCOUNT))
        record.intend("cfq-contract-0badf00d-000-a")
        record.created("cfq-contract-0badf00d-000-a", "0123456789abcdef0123456789abcdef")
        env = {
            **live_env(dripping),
            "CFQUEUES_CONTRACT_RECORD": str(tmp_path / "created.jsonl"),
            "CFQUEUES_CONTRACT_REQUEST_DEADLINE": "2",
        }
        started = time.monotonic()
        result = _cleanup(env, "--yes")
        took = time.monotonic() - started
    assert result.returncode == 1 and "Timeout: no complete answer within 2 s" in result.stdout, result.stdout
    assert took < 30 and len(reached) == 1  # one request, ended at its deadline (a per-read timeout: 130 s)
