"""
The contract suite runs each case against the emulator (``make test``) or, with ``--contract-target=live``
(``make contract``), against a real Cloudflare account *and* the emulator, and reports where they differ.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import pytest

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, ManualClock
from airflow_provider_cfqueues.hooks.connection import is_loopback

from .created import CreatedRecord, account_scope, record_path
from .ledger import Ledger
from .report import Check, Report, summarize
from .target import CONN_ID, Target

T = TypeVar("T")
TOKEN_ENV = "CFQUEUES_CONTRACT_TOKEN"
ACCOUNT_ENV = "CFQUEUES_CONTRACT_ACCOUNT_ID"
BASE_URL_ENV = "CFQUEUES_CONTRACT_BASE_URL"
DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
PACE_ENV = "CFQUEUES_CONTRACT_PACE"
#: a live run stays far inside Cloudflare's 1,200 requests per 5 minutes: by default at most 2 counted
#: requests a second (CFQUEUES_CONTRACT_PACE: seconds between them), 5 pulls or acks a second, and it
#: stops after 600 counted requests
LIVE_CAP = 600


CAP_ENV = "CFQUEUES_CONTRACT_CAP"
#: the fastest pace a live run may be given (seconds between counted requests)
MIN_PACE = 0.01


def _live_ledger() -> Ledger:
    pace = _setting(PACE_ENV, "0.5", float)
    if not math.isfinite(pace) or pace < MIN_PACE:
        raise pytest.UsageError(f"{PACE_ENV}={pace!r}: give the seconds between counted requests, at least {MIN_PACE}")
    cap = _setting(CAP_ENV, str(LIVE_CAP), int)
    if not 1 <= cap <= LIVE_CAP:
        raise pytest.UsageError(f"{CAP_ENV}={cap!r}: give the counted requests a run may make, 1 to {LIVE_CAP}")
    return Ledger(counted_interval=pace, exempt_interval=min(pace, 0.2), cap=cap)


def _setting(name: str, default: str, kind: Callable[[str], T]) -> T:
    text = os.environ.get(name) or default
    try:
        return kind(text)
    except ValueError:
        raise pytest.UsageError(f"{name}={text!r} is not a {kind.__name__}") from None


@dataclass
class ContractRun:
    target: str
    prefix: str = field(default_factory=lambda: f"cfq-contract-{secrets.token_hex(4)}")
    checks: list[Check] = field(default_factory=list)
    live_ledger: Ledger = field(default_factory=_live_ledger)
    counted: int = 0
    exempt: int = 0
    leftovers: list[str] = field(default_factory=list)
    #: every queue the run created, by id: removed once deleted (what is left is named at the end)
    created: dict[str, str] = field(default_factory=dict)
    skipped_because: str | None = None
    report_paths: list[Path] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=dict)
    numbers: Iterator[int] = field(default_factory=itertools.count)


RUN = pytest.StashKey[ContractRun]()


def _run(config: pytest.Config) -> ContractRun:
    if RUN not in config.stash:
        config.stash[RUN] = ContractRun(target=config.getoption("contract_target"))
    return config.stash[RUN]


def _live_credentials() -> tuple[str, str, str] | None:
    token, account_id = os.environ.get(TOKEN_ENV, ""), os.environ.get(ACCOUNT_ENV, "")
    if not token or not account_id:
        return None
    base_url = os.environ.get(BASE_URL_ENV, DEFAULT_BASE_URL).rstrip("/")
    url = urlsplit(base_url)
    if url.scheme != "https" and not (url.scheme == "http" and is_loopback(url.hostname or "")):
        raise pytest.UsageError(
            f"{BASE_URL_ENV}={url.scheme}://{url.hostname}...: the token goes over https only (plain http to a "
            "loopback address, for an emulator, is the one exception)"
        )
    return token, account_id, base_url


def _secrets() -> list[str]:
    credentials = _live_credentials()
    return [credentials[0], credentials[1]] if credentials else []


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret blotted out."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return text


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing case's report (traceback, locals with -l, captured output) never shows the token or the
    account id: a dropped connection puts the request's URL and headers in the frames pytest prints."""
    outcome = yield
    secrets = _secrets()
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not secrets or "contract_kind" not in getattr(item, "fixturenames", ()):
        return
    if report.longrepr is not None:
        text = str(report.longrepr)
        if any(secret in text for secret in secrets):
            report.longrepr = scrub(text, secrets)
    report.sections = [(title, scrub(content, secrets)) for title, content in report.sections]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "contract" in metafunc.fixturenames:
        kinds = ["live", "emulator"] if _run(metafunc.config).target == "live" else ["emulator"]
        metafunc.parametrize("contract_kind", kinds)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run = _run(config)
    if run.target != "live" or _live_credentials() is not None:
        return
    run.skipped_because = (
        f"contract suite skipped: set {TOKEN_ENV} and {ACCOUNT_ENV} to run it against a Cloudflare account "
        "(docs/emulator.md#the-contract-suite)"
    )
    contract_items = [item for item in items if "contract_kind" in getattr(item, "fixturenames", ())]
    if contract_items:
        config.hook.pytest_deselected(items=contract_items)
        items[:] = [item for item in items if item not in contract_items]


@pytest.fixture
def contract(request: pytest.FixtureRequest, contract_kind: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Target]:
    """The case's target: its queues are deleted when the case ends, passed or not."""
    run = _run(request.config)
    wait: Callable[[float], object]
    if contract_kind == "live":
        credentials = _live_credentials()
        assert credentials is not None
        token, account_id, base_url = credentials
        ledger, wait, now, reading = run.live_ledger, time.sleep, time.monotonic, {}
        record: CreatedRecord | None = CreatedRecord(record_path(), account_scope(base_url, account_id))
    else:
        emulator: CloudflareQueuesEmulator = request.getfixturevalue("emulator")
        token, account_id, base_url = emulator.token, emulator.account_id, emulator.base_url
        clock = emulator.clock
        assert isinstance(clock, ManualClock), "the contract suite runs the emulator on a manual clock"
        ledger, wait, now = Ledger(), clock.advance, clock.now
        reading = {"json_bodies": request.getfixturevalue("json_bodies")}
        record = None  # the emulator's queues go with it
    connection = {
        "conn_type": "cloudflare_queues",
        "host": base_url,
        "password": token,
        "extra": {"account_id": account_id},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
    target = Target(
        kind=contract_kind,
        base_url=base_url,
        token=token,
        account_id=account_id,
        ledger=ledger,
        wait=wait,
        now=now,
        prefix=f"{run.prefix}-{next(run.numbers):03d}",
        registry=run.created,
        case=getattr(request.node, "originalname", request.node.name).removeprefix("test_"),
        checks=run.checks,
        emulator_reading=reading,
        record=record,
    )
    counted, exempt = ledger.counted, ledger.exempt
    try:
        yield target
    finally:
        with ledger.cleaning():  # a reserve past the cap and the budget: cleanup always runs
            failures = target.cleanup()
        target.hook.close()
        target.session.close()
        if contract_kind == run.target:  # the run's figures are those of its target
            run.counted += ledger.counted - counted
            run.exempt += ledger.exempt - exempt
        run.leftovers += failures
    assert not failures, f"queues of this case could not be deleted: {failures}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    run = session.config.stash.get(RUN, None)
    if run is None:
        return
    _write_report(session, run, exitstatus)
    if hasattr(session.config, "workeroutput"):  # a pytest-xdist worker: its controller prints the summary
        session.config.workeroutput.setdefault("summary_lines", []).extend(_summary_lines(run))


def _write_report(session: pytest.Session, run: ContractRun, exitstatus: int) -> None:
    if run.skipped_because is not None:
        if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            session.exitstatus = pytest.ExitCode.OK
        return
    if not run.checks:
        return
    credentials = _live_credentials() if run.target == "live" else None
    host = credentials[2] if credentials else "the bundled emulator"
    run.leftovers += [
        f"{name} ({queue_id}): not deleted (the run was interrupted)"
        for queue_id, name in run.created.items()
        if not any(queue_id in line for line in run.leftovers)
    ]
    stopped = run.live_ledger.stopped_because if run.target == "live" else None
    report = Report(run.target, host, run.checks, run.counted, run.exempt, run.leftovers, stopped)
    directory = Path(session.config.getoption("contract_report"))
    if not directory.is_absolute():
        directory = session.config.rootpath / directory
    run.report_paths = report.write(directory, _secrets())
    run.summary = summarize(report.rows())


def _summary_lines(run: ContractRun) -> list[str]:
    if run.skipped_because is not None:
        return [run.skipped_because]
    if not run.report_paths:
        return []
    summary = run.summary
    lines = [
        f"contract suite against {run.target}: {summary['checks']} checks, emulator matched "
        f"{summary['emulator_matched']}, differed {summary['emulator_differed']}, no reference "
        f"{summary['no_reference']}; requests counted by the API budget: {run.counted} (pulls and acks: "
        f"{run.exempt}); report: {', '.join(str(path) for path in run.report_paths)}"
    ]
    if run.target == "live" and run.live_ledger.stopped_because:
        lines.append(f"contract run stopped early: {run.live_ledger.stopped_because}")
    if run.leftovers:
        lines.append(
            f"queues left behind: {'; '.join(scrub(line, _secrets()) for line in run.leftovers)}. Delete them with "
            "`make contract-cleanup --yes` (it deletes only the queues runs recorded creating, while they still "
            "carry the recorded name)"
        )
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    run = config.stash.get(RUN, None)
    for line in _summary_lines(run) if run is not None else []:
        terminalreporter.write_line(line)
