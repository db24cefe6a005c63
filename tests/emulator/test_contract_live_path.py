"""
The contract suite's live path (``make contract``), run against an emulator process standing in for a
Cloudflare account: both targets, pacing and counting, cleanup, a bystander queue left alone, the report.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, EmulatorProcess

from ..contract.ledger import ForeignQueueError, Ledger
from ..contract.target import Target

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
    return subprocess.run(command, cwd=REPO, env={**clean, **env}, capture_output=True, text=True, timeout=600)


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
    for name, value in emulator.airflow_connection_env("cfqueues_contract").items():
        monkeypatch.setenv(name, value)
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


@pytest.mark.airflow3  # the harness is the same on every Airflow: once is enough
def test_cleanup_deletes_only_the_queues_of_earlier_runs(tmp_path: Path) -> None:
    names = ["cfq-contract-0123abcd-000-q", "cfq-contract-0123abcd-001-dlq", "cfq-contractual", "orders"]
    with EmulatorProcess(names, token=LIVE_TOKEN, account_id=LIVE_ACCOUNT) as account:
        env = live_env(account.base_url)
        clean = {k: v for k, v in os.environ.items() if not k.startswith("CFQUEUES_CONTRACT_")}
        result = subprocess.run(
            [sys.executable, "-m", "tests.contract.cleanup"],
            cwd=REPO,
            env={**clean, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        api = f"{account.base_url}/accounts/{LIVE_ACCOUNT}/queues"
        left = requests.get(api, headers={"Authorization": f"Bearer {LIVE_TOKEN}"}, timeout=10).json()["result"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(queue["queue_name"] for queue in left) == ["cfq-contractual", "orders"]
    assert (
        "deleted: cfq-contract-0123abcd-000-q" in result.stdout
        and "2 queue(s) of earlier runs deleted" in result.stdout
    )
    assert LIVE_TOKEN not in result.stdout + result.stderr


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
