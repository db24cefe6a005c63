from __future__ import annotations

import atexit
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path

# Airflow reads its configuration when first imported: give the whole session a private home and a
# SQLite metadata DB before any test module imports it.
AIRFLOW_HOME = tempfile.mkdtemp(prefix="cfqueues-airflow-home-")
atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)
os.environ["AIRFLOW_HOME"] = AIRFLOW_HOME
# one key for this process and the Airflow processes the tests start (they share the metadata DB)
os.environ["AIRFLOW__CORE__FERNET_KEY"] = base64.urlsafe_b64encode(os.urandom(32)).decode()
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{AIRFLOW_HOME}/airflow.db"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
# OutgoingMessage objects travel through XCom: users allow them the same way (docs/operators.md)
os.environ["AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES"] = "airflow.*\nairflow_provider_cfqueues.*"
if version("apache-airflow").startswith("2."):  # Airflow 2.11: the only executor that works with SQLite
    os.environ["AIRFLOW__CORE__EXECUTOR"] = "SequentialExecutor"
REPO = Path(__file__).resolve().parent.parent
# dag.test() needs the DAG in a bundle: the example DAGs, and the DAGs the tests define
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
    [
        {
            "name": "dags-folder",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(REPO / "example_dags")},
        },
        {
            "name": "test-dags",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(REPO / "tests" / "dags")},
        },
    ]
)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "example_dags")

import pytest  # noqa: E402

from airflow_provider_cfqueues.api.flows import QUEUE_NAMES  # noqa: E402
from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator, ManualClock  # noqa: E402

from .helpers import TEST_TOKEN, point_connection  # noqa: E402
from .openapi_check import OpenAPIRecorder  # noqa: E402
from .secrets_check import leaks_in_db  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cfqueues contract suite (tests/contract)")
    group.addoption(
        "--contract-target",
        choices=("emulator", "live"),
        default="emulator",
        help="emulator: the bundled emulator only; live: a Cloudflare account (CFQUEUES_CONTRACT_TOKEN, "
        "CFQUEUES_CONTRACT_ACCOUNT_ID) compared with the emulator",
    )
    group.addoption(
        "--contract-report",
        default="contract-report",
        help="directory for contract-report.json and contract-report.md (relative to the rootdir)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "airflow3: needs Airflow 3 (skipped on Airflow 2.11)")
    config.addinivalue_line(
        "markers", "airflow_agnostic: uses no Airflow (the emulator alone): runs in the Airflow 3 suite only"
    )
    config.addinivalue_line(
        "markers", "contract_waits: a contract case that waits half a minute or more on a live account"
    )


# The API token must never appear in logs, task logs, XCom, exception texts or rendered templates:
# every test's captured output and failure report, and at the end the whole metadata DB, are checked.
TOKEN_LEAKS: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    texts = [content for _, content in report.sections]
    if report.longrepr is not None:
        texts.append(str(report.longrepr))
    if any(TEST_TOKEN in text for text in texts):
        TOKEN_LEAKS.append(f"{report.nodeid} ({report.when})")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    db_leaks = [f"metadata DB: {where}" for where in leaks_in_db(Path(AIRFLOW_HOME) / "airflow.db", TEST_TOKEN)]
    if hasattr(session.config, "workeroutput"):  # a pytest-xdist worker: its controller reports (below)
        session.config.workeroutput["token_leaks"] = db_leaks
        return
    leaks = TOKEN_LEAKS + db_leaks
    if leaks:
        print(f"\nThe test API token leaked into: {', '.join(leaks)}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


#: lines pytest-xdist workers ask their controller to print at the end (the contract suite's summary)
WORKER_SUMMARY_LINES: list[str] = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """A pytest-xdist worker ended: what it found in its own metadata DB, and the lines it leaves to print."""
    output = getattr(node, "workeroutput", {})
    TOKEN_LEAKS.extend(output.get("token_leaks", []))
    WORKER_SUMMARY_LINES.extend(line for line in output.get("summary_lines", []) if line not in WORKER_SUMMARY_LINES)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """make test runs on every core: each test module on one worker (modules share module-scoped fixtures such
    as the end-to-end Airflow components), and the contract suite on one worker (it writes one report)."""
    from xdist.scheduler import LoadFileScheduling

    class ByModule(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "tests/contract" if module.startswith("tests/contract/") else module

    return ByModule(config, log)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in WORKER_SUMMARY_LINES:
        terminalreporter.write_line(line)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from airflow_provider_cfqueues._compat import AIRFLOW_3

    if AIRFLOW_3:
        return
    skip = pytest.mark.skip(reason="needs Airflow 3")
    once = pytest.mark.skip(reason="uses no Airflow: runs in the Airflow 3 suite")
    for item in items:
        if "airflow3" in item.keywords:
            item.add_marker(skip)
        elif "airflow_agnostic" in item.keywords:
            item.add_marker(once)


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """A migrated metadata DB (SQLite in the session's AIRFLOW_HOME), created once per session."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], check=True, capture_output=True, timeout=600)
    return AIRFLOW_HOME


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_800_000_000.0)


@pytest.fixture
def json_bodies() -> str:
    """How the emulator encodes json bodies in pulls; parametrize ``json_bodies`` to run a test in each mode."""
    return "base64"


@pytest.fixture
def emulator(clock: ManualClock, json_bodies: str) -> Iterator[CloudflareQueuesEmulator]:
    """An emulator on a manual clock whose every exchange is validated against the OpenAPI fragment."""
    with CloudflareQueuesEmulator(token=TEST_TOKEN, clock=clock, json_bodies=json_bodies) as emu:
        recorder = OpenAPIRecorder(f"http://127.0.0.1:{emu.port}")
        emu.app.observers.append(recorder)
        emu.openapi = recorder  # type: ignore[attr-defined]
        yield emu
        assert not recorder.violations, "\n".join(recorder.violations)


@pytest.fixture(autouse=True)
def _no_cached_queue_names() -> None:
    """Every test starts with no queue names cached: an earlier test's emulator may have had this port."""
    QUEUE_NAMES.forget_all()


@pytest.fixture
def connection(emulator: CloudflareQueuesEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """The default Airflow connection, pointed at ``emulator``."""
    return point_connection(monkeypatch, emulator)


@pytest.fixture
def emulator_connection(airflow_db: str, monkeypatch: pytest.MonkeyPatch) -> Callable[[CloudflareQueuesEmulator], str]:
    """Point the default connection at an emulator a test starts itself (tasks of dag.test() run in this
    process)."""
    return lambda emulator: point_connection(monkeypatch, emulator)
