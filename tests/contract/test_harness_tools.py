"""The contract suite's own safety rails: the request ledger and the report (tests/contract/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..contract.ledger import BudgetSpentError, ForeignQueueError, Ledger
from ..contract.report import AMBIGUOUS, DOCUMENTED, Check, Report

BASE = "https://api.cloudflare.com/client/v4/accounts/023e105f4ecef8ad9ca31a8372d0c353/queues"
OURS, THEIRS = "a" * 32, "b" * 32


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_the_ledger_refuses_to_change_a_queue_the_run_did_not_create() -> None:
    ledger = Ledger(owned={OURS})
    ledger.admit("POST", f"{BASE}/{OURS}/messages")
    ledger.admit("DELETE", f"{BASE}/{OURS}")
    ledger.admit("GET", f"{BASE}/{THEIRS}/metrics")  # reading is harmless
    ledger.admit("POST", BASE)  # creating a queue names no queue id
    for method, suffix in [("POST", "/messages"), ("POST", "/messages/pull"), ("DELETE", ""), ("PATCH", "")]:
        with pytest.raises(ForeignQueueError, match=THEIRS):
            ledger.admit(method, f"{BASE}/{THEIRS}{suffix}")
    assert ledger.counted == 4


def test_the_ledger_paces_counted_requests_and_pulls_separately() -> None:
    fake = FakeTime()
    ledger = Ledger(
        counted_interval=0.5, exempt_interval=0.2, owned={OURS}, sleep=fake.sleep, monotonic=lambda: fake.now
    )
    ledger.admit("POST", f"{BASE}/{OURS}/messages")
    ledger.admit("POST", f"{BASE}/{OURS}/messages")  # right after: waits 0.5 s
    fake.now += 0.1
    ledger.admit("POST", f"{BASE}/{OURS}/messages/pull")  # exempt: 0.2 s after the last request
    fake.now += 1.0
    ledger.admit("POST", f"{BASE}/{OURS}/messages/ack")  # long enough ago: no wait
    assert fake.slept == [0.5, 0.1]
    assert (ledger.counted, ledger.exempt) == (2, 2)


def test_the_ledger_stops_the_run_at_its_cap_but_lets_pulls_and_acks_finish() -> None:
    ledger = Ledger(cap=2, owned={OURS})
    ledger.admit("GET", f"{BASE}/{OURS}")
    ledger.admit("GET", f"{BASE}/{OURS}/metrics")
    with pytest.raises(BudgetSpentError, match="cap of 2"):
        ledger.admit("POST", f"{BASE}/{OURS}/messages")
    ledger.admit("POST", f"{BASE}/{OURS}/messages/ack")
    assert (ledger.counted, ledger.exempt) == (2, 1)


def _check(name: str, kind: str, observed: object, target: str, expected: object = 200) -> Check:
    holds = observed == expected
    return Check("case", name, kind, "what the docs say", expected, observed, holds, target)


def test_a_live_report_pairs_each_check_and_says_where_the_emulator_differed(tmp_path: Path) -> None:
    checks = [
        _check("status", DOCUMENTED, 200, "live"),
        _check("status", DOCUMENTED, 200, "emulator"),
        _check("encoding", AMBIGUOUS, "plain", "live", "base64"),
        _check("encoding", AMBIGUOUS, "base64", "emulator", "base64"),
        _check("reached live only", DOCUMENTED, 200, "live"),
    ]
    report = Report("live", "https://api.cloudflare.com/client/v4", checks, counted_requests=12, exempt_requests=30)
    rows = {row["check"]: row for row in report.rows()}
    assert rows["status"]["emulator_matched"] is True
    assert rows["encoding"] == {
        "case": "case",
        "check": "encoding",
        "kind": AMBIGUOUS,
        "expectation": "what the docs say",
        "live": "plain",
        "live_holds": False,
        "emulator": "base64",
        "emulator_holds": True,
        "emulator_reading": "base64",
        "emulator_matched": False,
    }
    assert rows["reached live only"]["emulator_matched"] is None
    json_path, table_path = report.write(tmp_path, ["secret-token"])
    written = json.loads(json_path.read_text())
    assert written["summary"] == {"checks": 3, "emulator_matched": 1, "emulator_differed": 1, "no_reference": 1}
    assert written["requests"] == {"counted_by_the_api_budget": 12, "exempt": 30}
    table = table_path.read_text()
    assert "| case | encoding | ambiguous | what the docs say | plain | base64 | **no** |" in table
    assert "not reached" in table


def test_the_report_blots_out_secrets_an_answer_may_echo(tmp_path: Path) -> None:
    checks = [_check("error text", AMBIGUOUS, "no access to account 0123abcd", "emulator", "x")]
    paths = Report("emulator", "the bundled emulator", checks).write(tmp_path, ["0123abcd", ""])
    for path in paths:
        assert "0123abcd" not in path.read_text() and "<redacted>" in path.read_text()


def test_cleanup_has_a_reserve_past_the_cap() -> None:
    ledger = Ledger(cap=2, cleanup_reserve=2, owned={OURS})
    ledger.admit("POST", f"{BASE}/{OURS}/messages")
    ledger.admit("POST", f"{BASE}/{OURS}/messages")
    with pytest.raises(BudgetSpentError):
        ledger.admit("POST", f"{BASE}/{OURS}/messages")
    assert ledger.stopped_because == "the run reached its cap of 2 counted requests"
    with ledger.cleaning():  # what the run created is still deleted
        ledger.admit("GET", f"{BASE}/{OURS}/consumers")
        ledger.admit("DELETE", f"{BASE}/{OURS}")
        with pytest.raises(BudgetSpentError, match="cleanup reserve"):
            ledger.admit("DELETE", f"{BASE}/{OURS}")


@pytest.mark.parametrize(
    "headers",
    [
        {"Ratelimit": '"default";r=299;t=120', "Ratelimit-Policy": '"default";q=1200;w=300'},
        {"ratelimit-remaining": "299"},
    ],
)
def test_the_run_stops_early_keeping_a_quarter_of_the_accounts_budget(headers: dict[str, str]) -> None:
    """The budget is shared with the account's production traffic: the run leaves it a quarter."""
    ledger = Ledger(owned={OURS})
    ledger.observe({"Ratelimit": '"default";r=301;t=120', "Ratelimit-Policy": '"default";q=1200;w=300'})
    ledger.admit("POST", f"{BASE}/{OURS}/messages")
    ledger.observe(headers)
    assert (ledger.remaining, ledger.keep_for_others) == (299, 300)
    with pytest.raises(BudgetSpentError, match=r"299 requests left .* keeping at least 300"):
        ledger.admit("POST", f"{BASE}/{OURS}/messages")
    ledger.admit("POST", f"{BASE}/{OURS}/messages/pull")  # pulls and acks are not counted
    with ledger.cleaning():
        ledger.admit("DELETE", f"{BASE}/{OURS}")


def test_report_cells_are_redacted_before_they_are_shortened(tmp_path: Path) -> None:
    secret = "tok-" + "x" * 40
    checks = [Check("case", "echo", AMBIGUOUS, "what came back", None, "Bearer " + secret + " and more", True, "live")]
    table = (Report("live", "host", checks).write(tmp_path, [secret])[1]).read_text()
    assert "tok-" not in table and "<redacted>" in table
