"""
``make contract-cleanup``: the queues earlier contract runs created in the account and did not delete
(an interrupted run), as the run recorded them (:mod:`.created`), and only those:

* a recorded id is read back first, and the queue is deleted only while it still carries the recorded
  name (a queue renamed since, or an id now holding something else, is left alone and named);
* a queue whose create answer never arrived (or a dead-letter queue the service made) is found with the
  service's ``name`` filter, one request, and taken only when it was created after the run meant to;
* without ``--yes`` (``make contract-cleanup CONFIRM=yes``) it lists what it would delete and deletes
  nothing.

No listing of the account, no name patterns: a queue someone else named ``cfq-contract-...`` is never
touched. Requests are paced and counted as a run's are, and a redirect stops the cleanup.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

import pytest
import requests

from .conftest import _live_credentials, _live_ledger
from .created import Created, CreatedRecord, account_scope, record_path
from .ledger import BudgetSpentError, raw_session

#: a recorded creation time and the service's ``created_on`` may differ by this much (clocks)
CLOCK_SLACK_SECONDS = 120.0


def _result(response: requests.Response) -> Any:
    """The answer's ``result``; a body that is not the API's JSON envelope is an error naming the status."""
    try:
        return response.json().get("result")
    except (ValueError, AttributeError):
        start = response.text[:120].replace("\n", " ")
        raise requests.RequestException(f"HTTP {response.status_code}, not a JSON answer: {start!r}") from None


def _created_on(queue: dict[str, Any]) -> float | None:
    try:
        return datetime.fromisoformat(str(queue.get("created_on")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _resolve(session: requests.Session, api: str, entry: Created) -> tuple[str | None, str]:
    """The id to delete for a recorded queue (or ``None``), and what was found, in words."""
    if entry.queue_id is not None:
        answer = session.get(f"{api}/{entry.queue_id}", timeout=60)
        if answer.status_code == 404:
            return None, "gone already"
        queue = _result(answer) or {}
        if queue.get("queue_name") != entry.name:
            return None, f"its id now carries the name {queue.get('queue_name')!r}: left alone"
        return entry.queue_id, "recorded id, same name"
    found = [
        queue
        for queue in _result(session.get(api, params={"name": entry.name}, timeout=60)) or []
        if queue.get("queue_name") == entry.name and (_created_on(queue) or 0.0) >= entry.at - CLOCK_SLACK_SECONDS
    ]
    if len(found) != 1:
        return None, "not found" if not found else f"{len(found)} queues carry that name: left alone"
    return str(found[0]["queue_id"]), "found by name, created after the run meant to"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make contract-cleanup", description=__doc__.splitlines()[1])
    parser.add_argument("--yes", action="store_true", help="delete (without it: list what would be deleted)")
    args = parser.parse_args(argv)
    try:
        credentials = _live_credentials()
        ledger = _live_ledger()
    except pytest.UsageError as err:
        print(f"contract-cleanup: {err}", file=sys.stderr)
        return 2
    if credentials is None:
        print("contract-cleanup: set CFQUEUES_CONTRACT_TOKEN and CFQUEUES_CONTRACT_ACCOUNT_ID", file=sys.stderr)
        return 2
    token, account_id, base_url = credentials
    record = CreatedRecord(record_path(), account_scope(base_url, account_id))
    session = raw_session(ledger, token)
    api = f"{base_url}/accounts/{account_id}/queues"
    deleted = failed = 0
    try:
        with ledger.cleaning():
            for entry in record.pending():
                queue_id, found = _resolve(session, api, entry)
                if queue_id is None:
                    print(f"skipped: {entry.name} ({found})")
                    if found in ("gone already", "not found"):
                        record.deleted(entry.name)
                    continue
                if not args.yes:
                    print(f"would delete: {entry.name} ({found})")
                    continue
                ledger.owned.add(queue_id)  # only these may be changed
                for consumer in _result(session.get(f"{api}/{queue_id}/consumers", timeout=60)) or []:
                    session.delete(f"{api}/{queue_id}/consumers/{consumer['consumer_id']}", timeout=60)
                status = session.delete(f"{api}/{queue_id}", timeout=60).status_code
                print(f"{'deleted' if status in (200, 404) else f'could not delete (HTTP {status})'}: {entry.name}")
                if status in (200, 404):
                    record.deleted(entry.name)
                    deleted += 1
                else:
                    failed += 1
    except (BudgetSpentError, requests.RequestException) as err:
        print(f"contract-cleanup: stopped: {type(err).__name__}: {err}".replace(account_id, "<account>"))
        return 1
    if not args.yes:
        print("contract-cleanup: nothing deleted; run `make contract-cleanup CONFIRM=yes` to delete what is listed")
        return 0
    print(f"contract-cleanup: {deleted} queue(s) of earlier runs deleted, {failed} not")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
