"""
``make contract-cleanup``: delete the queues earlier contract runs left behind in the account — those
named ``cfq-contract-<8 hex>-<nnn>-...`` (and their consumers), nothing else — paced and within the
same API budget rules as a run. Prints each queue it deletes, and what it could not.
"""

from __future__ import annotations

import re
import sys

import pytest
import requests

from .conftest import _live_credentials, _live_ledger
from .ledger import BudgetSpentError, route_through

#: the names a contract run gives its queues (and the dead-letter queues the service makes for them)
RUN_QUEUE = re.compile(r"cfq-contract-[0-9a-f]{8}-[0-9]{3}-[a-z0-9-]+")
PER_PAGE = 100


def main() -> int:
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
    session = route_through(requests.Session(), ledger)
    session.headers["Authorization"] = f"Bearer {token}"
    api = f"{base_url}/accounts/{account_id}/queues"
    leftovers = []
    page = 1
    try:
        while True:
            answer = session.get(api, params={"page": page, "per_page": PER_PAGE}, timeout=60).json()
            queues = answer.get("result") or []
            leftovers += [(q["queue_name"], q["queue_id"]) for q in queues if RUN_QUEUE.fullmatch(q["queue_name"])]
            if len(queues) < PER_PAGE:
                break
            page += 1
        failed = 0
        with ledger.cleaning():
            for name, queue_id in leftovers:
                ledger.owned.add(queue_id)  # only these may be changed
                for consumer in session.get(f"{api}/{queue_id}/consumers", timeout=60).json().get("result") or []:
                    session.delete(f"{api}/{queue_id}/consumers/{consumer['consumer_id']}", timeout=60)
                status = session.delete(f"{api}/{queue_id}", timeout=60).status_code
                print(f"{'deleted' if status in (200, 404) else f'could not delete (HTTP {status})'}: {name}")
                failed += status not in (200, 404)
    except (BudgetSpentError, requests.RequestException) as err:
        print(f"contract-cleanup: stopped: {type(err).__name__}: {err}".replace(account_id, "<account>"))
        return 1
    print(f"contract-cleanup: {len(leftovers) - failed} queue(s) of earlier runs deleted, {failed} not")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
