"""
pytest fixtures for testing DAGs that use Cloudflare Queues, against the bundled emulator.

Installed with the provider and registered through the ``pytest11`` entry point, so they are
available in any test suite of a project that has the provider installed::

    def test_my_dag(cfqueues_emulator, cfqueues_connection):
        queue = cfqueues_emulator.create_queue("orders")
        my_dag.test()
        assert cfqueues_emulator.metrics("orders")["backlog_count"] == 0

``cfqueues_emulator`` serves on a free loopback port for the duration of one test.
``cfqueues_connection`` points the Airflow connection ``cloudflare_queues_default`` at it (through
an ``AIRFLOW_CONN_*`` environment variable) and returns the connection id. The ``cfqueues`` marker
tunes the emulator::

    @pytest.mark.cfqueues(manual_clock=True, queues=["orders"], conn_id="my_conn")
    def test_redelivery(cfqueues_emulator):
        cfqueues_emulator.clock.advance(31)  # expire 30 s leases without sleeping

To run DAGs with ``dag.test()``, Airflow needs a migrated metadata DB and the DAGs in its DAGs
folder, configured before Airflow is first imported. Opt in, and the plugin gives the test session a
private Airflow home with a SQLite DB (``cfqueues_airflow_db`` migrates it, once per session)::

    # pytest.ini
    [pytest]
    cfqueues_airflow_home = true
    cfqueues_dags_folder = dags

    def test_orders_dag(cfqueues_airflow_db, cfqueues_emulator, cfqueues_connection):
        from dags.orders import dag
        cfqueues_emulator.create_queue("orders")
        assert dag.test().state == "success"

This module imports nothing from Airflow, so loading it costs nothing in other test suites.
"""

from __future__ import annotations

import base64
import difflib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from .api.flows import QUEUE_NAMES
from .emulator import DEFAULT_CONN_ID, CloudflareQueuesEmulator, FaultPlan, ManualClock

_HOME_OPTION = "cfqueues_airflow_home"
_HOME = pytest.StashKey[Path]()  # the private Airflow home, when the session has one
_SAVED_ENVIRONMENT = pytest.StashKey[dict[str, str | None]]()  # what the plugin changed, as it was before
_HIDDEN = pytest.StashKey[list[str]]()  # the user's variables hidden for the session

#: the options of the ``cfqueues`` marker, and the types each takes
MARKER_OPTIONS: dict[str, tuple[type, ...]] = {
    "manual_clock": (bool,),
    "queues": (list, tuple),
    "conn_id": (str,),
    "faults": (FaultPlan, type(None)),
    "token": (str, type(None)),
    "json_bodies": (str,),
    "rate_limit": (str, type(None)),
    "queue_throughput": (int, type(None)),
    "purge_seconds": (int, float),
    "read_only_token": (str, type(None)),
    "plan": (str,),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        _HOME_OPTION,
        "give the session a private Airflow home with a SQLite metadata DB, for dag.test() (default: false)",
        type="bool",
        default=False,
    )
    parser.addini("cfqueues_dags_folder", "the DAGs folder of that Airflow home, from the rootdir", default="dags")
    parser.getgroup("cfqueues").addoption(
        "--cfqueues-airflow-home", action="store_true", dest=_HOME_OPTION, help=f"the same as the {_HOME_OPTION} ini"
    )


def airflow_test_environment(home: Path, dags_folder: Path) -> dict[str, str]:
    """
    The environment of a throw-away Airflow home for tests: SQLite DB, no examples, our DAGs; the user's
    own configuration file and secrets backends are not read (a backend that returns a production
    ``cloudflare_queues_default`` would otherwise win over the emulator's connection).
    """
    environment = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(home / "airflow.cfg"),
        "AIRFLOW__SECRETS__BACKEND": "",
        "AIRFLOW__SECRETS__BACKEND_KWARGS": "{}",
        "AIRFLOW__WORKERS__SECRETS_BACKEND": "",
        "AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS": "{}",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        # messages (OutgoingMessage) travel through XCom between tasks
        "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES": "airflow.*\nairflow_provider_cfqueues.*",
    }
    if version("apache-airflow").startswith("2."):
        environment["AIRFLOW__CORE__EXECUTOR"] = "SequentialExecutor"  # the one that works with SQLite
    return environment


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """Set up the private Airflow home before any conftest or test module can import Airflow."""
    wanted = getattr(early_config.known_args_namespace, _HOME_OPTION, False) or early_config.getini(_HOME_OPTION)
    if not wanted:
        return
    if "airflow" in sys.modules:
        raise pytest.UsageError(
            f"{_HOME_OPTION}: Airflow was imported before the plugin could configure it; import it in tests, "
            "not at the top of a plugin loaded with -p"
        )
    configured = str(early_config.getini("cfqueues_dags_folder"))
    dags_folder = (early_config.rootpath / configured).resolve()
    if not dags_folder.is_dir():
        raise pytest.UsageError(
            f"cfqueues_dags_folder = {configured!r}: there is no folder {dags_folder} (the path is read from the "
            "rootdir; in an ini file a comment must stand on its own line, not after the value)"
        )
    home = Path(tempfile.mkdtemp(prefix="cfqueues-airflow-home-"))
    environment = airflow_test_environment(home, dags_folder)
    hidden = sorted(name for name in os.environ if _reaches_elsewhere(name) and name not in environment)
    early_config.stash[_SAVED_ENVIRONMENT] = {name: os.environ.get(name) for name in [*environment, *hidden]}
    for name in hidden:  # the user's connections, variables and secret commands: out of reach (given back after)
        del os.environ[name]
    os.environ.update(environment)
    early_config.stash[_HOME] = home
    early_config.stash[_HIDDEN] = hidden
    from .hooks.transport import REACH  # no Airflow: requests and httpx

    REACH.restrict()  # the hook reaches only the emulators the session's tests start


def _reaches_elsewhere(name: str) -> bool:
    """An environment variable through which Airflow would find a real connection, variable or secret."""
    return name.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_")) or (
        name.startswith("AIRFLOW__") and name.endswith(("_CMD", "_SECRET"))
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Say what the session kept out of reach (shown with ``-q`` too)."""
    if config.stash.get(_HOME, None) is None:
        return
    terminalreporter.write_line("cfqueues: a private Airflow home; the provider reached only this session's emulators")
    hidden = config.stash.get(_HIDDEN, [])
    if hidden:
        terminalreporter.write_line(f"cfqueues: hidden for this session (given back at its end): {', '.join(hidden)}")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Give back the environment as it was (the user's AIRFLOW_HOME, keys, DB), and remove the private home."""
    for name, value in config.stash.get(_SAVED_ENVIRONMENT, {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    home = config.stash.get(_HOME, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)
        from .hooks.transport import REACH

        REACH.lift()


@pytest.fixture(scope="session")
def cfqueues_airflow_db(pytestconfig: pytest.Config) -> Path:
    """
    The session's private Airflow home, its SQLite metadata DB migrated (once per session), so that
    ``dag.test()`` runs; needs ``cfqueues_airflow_home = true`` in the pytest configuration.
    """
    home = pytestconfig.stash.get(_HOME, None)
    if home is None:
        pytest.fail(
            f"cfqueues_airflow_db needs a private Airflow home: set `{_HOME_OPTION} = true` (and "
            "`cfqueues_dags_folder = <your DAGs folder>`) in the pytest configuration, or pass --cfqueues-airflow-home",
            pytrace=False,
        )
    airflow = Path(sys.executable).with_name("airflow")
    command = [str(airflow)] if airflow.exists() else [sys.executable, "-m", "airflow"]
    migrate = [*command, "db", "migrate"]  # our own executable, fixed arguments
    result = subprocess.run(migrate, capture_output=True, text=True, timeout=900, check=False)  # noqa: S603
    if result.returncode != 0:
        pytest.fail(f"airflow db migrate failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}", pytrace=False)
    return home


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "cfqueues(manual_clock=False, queues=(), conn_id='cloudflare_queues_default', faults=None, token=None, "
        "json_bodies='base64', rate_limit=None, queue_throughput=None, purge_seconds=0, "
        "read_only_token=None, plan='paid'): "
        "options of the cfqueues_emulator fixture",
    )


def marker_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The ``cfqueues`` marker's options; an unknown option or a value of the wrong type fails the test's setup
    (a misspelt ``manul_clock=True`` would otherwise be ignored, and the test pass for the wrong reason)."""
    marker = request.node.get_closest_marker("cfqueues")
    if marker is None:
        return {}
    if marker.args:
        pytest.fail(f"@pytest.mark.cfqueues takes keyword options only, got {marker.args!r}", pytrace=False)
    options = dict(marker.kwargs)
    for name, value in options.items():
        if name not in MARKER_OPTIONS:
            close = difflib.get_close_matches(name, MARKER_OPTIONS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            pytest.fail(
                f"@pytest.mark.cfqueues: unknown option {name!r}{hint}; it takes {', '.join(MARKER_OPTIONS)}",
                pytrace=False,
            )
        wanted = MARKER_OPTIONS[name]
        if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
            names = " or ".join("None" if kind is type(None) else kind.__name__ for kind in wanted)
            pytest.fail(f"@pytest.mark.cfqueues: {name} must be {names}, got {value!r}", pytrace=False)
    return options


@pytest.fixture
def cfqueues_emulator(request: pytest.FixtureRequest) -> Iterator[CloudflareQueuesEmulator]:
    """A running Cloudflare Queues emulator on a free loopback port, stopped after the test."""
    options = marker_options(request)
    emulator = CloudflareQueuesEmulator(
        token=options.get("token"),
        clock=ManualClock() if options.get("manual_clock") else None,
        faults=options.get("faults"),
        json_bodies=options.get("json_bodies", "base64"),
        rate_limit=options.get("rate_limit"),
        queue_throughput=options.get("queue_throughput"),
        purge_seconds=float(options.get("purge_seconds", 0.0)),
        read_only_token=options.get("read_only_token"),
        plan=options.get("plan", "paid"),
    )
    from .hooks.transport import REACH  # no Airflow: requests and httpx

    restricted_here = REACH.allowed is None  # without the private home: for this test
    with emulator:
        # names the hook cached for an earlier emulator on this port (same account id) are not this one's
        QUEUE_NAMES.forget_scope(emulator.base_url)
        REACH.restrict()
        REACH.allow(emulator.base_url)
        try:
            for name in options.get("queues", ()):
                emulator.create_queue(name)
            yield emulator
        finally:
            REACH.disallow(emulator.base_url)
            if restricted_here:
                REACH.lift()


@pytest.fixture
def cfqueues_connection(
    request: pytest.FixtureRequest, cfqueues_emulator: CloudflareQueuesEmulator, monkeypatch: pytest.MonkeyPatch
) -> str:
    """
    Define the Airflow connection to the emulator for this test and return its conn id, once the
    connection Airflow resolves for that id is checked to be the emulator's: a secrets backend or a
    connection in the metadata DB that Airflow reads first fails the test here, before anything could
    reach the server it points to.
    """
    conn_id = str(marker_options(request).get("conn_id", DEFAULT_CONN_ID))
    for name, value in cfqueues_emulator.airflow_connection_env(conn_id).items():
        monkeypatch.setenv(name, value)
    from .hooks.queues import CloudflareQueuesHook  # imports Airflow: only when the fixture is used

    settings = CloudflareQueuesHook(conn_id).settings
    resolved = (settings.base_url.rstrip("/"), settings.account_id, settings.token)
    if resolved != (cfqueues_emulator.base_url.rstrip("/"), cfqueues_emulator.account_id, cfqueues_emulator.token):
        pytest.fail(
            f"Airflow resolves the connection {conn_id!r} to {settings.base_url} (account {settings.account_id}), "
            f"not to the emulator at {cfqueues_emulator.base_url}: a secrets backend or the metadata DB defines it "
            "first. The test stops here, before anything reaches that server; run with `cfqueues_airflow_home = "
            "true` (a private Airflow home that reads no secrets backend), or remove that connection",
            pytrace=False,
        )
    return conn_id
