"""Provider metadata, the connection form, and the common-messaging integration."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from airflow_provider_cfqueues.emulator import CloudflareQueuesEmulator
from airflow_provider_cfqueues.get_provider_info import get_provider_info
from airflow_provider_cfqueues.hooks.connection_form import EXTRA_FIELDS
from airflow_provider_cfqueues.hooks.queues import CloudflareQueuesHook
from airflow_provider_cfqueues.triggers.queues import CloudflareQueuesMessageTrigger

from ..helpers import trigger_events
from ..scripted_faults import ScriptedFaults

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def test_provider_info_matches_airflows_schema() -> None:
    import airflow

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_the_providers_page_shows_a_clean_description_and_a_documentation_link(airflow_db: str) -> None:
    import re

    description = get_provider_info()["description"]
    shown = re.sub("[`_<>]", "", description.strip(" \n."))  # what Airflow's Providers page shows
    for url in re.findall(r"https?://\S+", shown):
        assert url.endswith("/"), f"{url!r}: punctuation glued to a link breaks it"
    from airflow_provider_cfqueues._compat import AIRFLOW_3

    if AIRFLOW_3:
        from airflow.providers_manager import ProvidersManager

        info = ProvidersManager().providers["airflow-provider-cfqueues"].data
        assert info["documentation-url"] == "https://pypi.org/project/airflow-provider-cfqueues/"


def test_provider_info_lists_every_operator_module() -> None:
    import importlib

    listed = {m for entry in get_provider_info()["operators"] for m in entry["python-modules"]}
    package = Path(__file__).resolve().parents[2] / "airflow_provider_cfqueues" / "operators"
    public = {  # the modules that define an operator users use (not the base class, not re-exports)
        f"airflow_provider_cfqueues.operators.{path.stem}"
        for path in package.glob("*.py")
        if re.search(r"^class CloudflareQueues(?!Base)\w*Operator\(", path.read_text(), re.M)
    }
    assert listed == public
    for module in listed:
        assert any(name.endswith("Operator") for name in vars(importlib.import_module(module)))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["providers", "list"], "airflow-provider-cfqueues"),
        (["providers", "hooks"], "airflow_provider_cfqueues.hooks.queues.CloudflareQueuesHook"),
        (["providers", "triggers"], "airflow_provider_cfqueues.triggers.queues"),
    ],
)
def test_airflow_cli_lists_the_provider(airflow_db: str, command: list[str], expected: str) -> None:
    result = subprocess.run(
        [AIRFLOW, *command, "--output", "json"], capture_output=True, text=True, timeout=180, check=True
    )
    assert expected in result.stdout


@pytest.mark.airflow3
def test_providers_manager_sees_hook_form_and_queue_class(airflow_db: str) -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert manager.hooks["cloudflare_queues"].hook_class_name.endswith("CloudflareQueuesHook")
    assert manager.hooks["cloudflare_queues"].hook_name == "Cloudflare Queues"
    widgets = manager.connection_form_widgets
    assert {f"extra__cloudflare_queues__{f.name}" for f in EXTRA_FIELDS} <= set(widgets)
    behaviour = manager.field_behaviours["cloudflare_queues"]
    assert behaviour["relabeling"] == {"host": "API base URL", "password": "API token"}
    assert set(behaviour["hidden_fields"]) == {"schema", "login", "port"}
    assert "airflow_provider_cfqueues.messaging.provider.CloudflareQueuesMessageQueueProvider" in (
        manager.queue_class_names
    )
    notifier = "airflow_provider_cfqueues.notifications.cloudflare_queues.CloudflareQueuesNotifier"
    assert notifier in manager.notification  # `airflow providers notifications` lists it


def test_both_connection_forms_describe_the_same_fields() -> None:
    """Airflow 3.2+ reads conn-fields from the provider info; older releases call the hook."""
    connection_type = get_provider_info()["connection-types"][0]
    conn_fields = connection_type["conn-fields"]
    widgets = CloudflareQueuesHook.get_connection_form_widgets()
    assert list(conn_fields) == list(widgets)
    for name, widget in widgets.items():
        assert str(widget.args[0]) == conn_fields[name]["label"]
        assert widget.kwargs["description"] == conn_fields[name]["description"]
        assert widget.kwargs.get("default") == conn_fields[name]["schema"].get("default")
        kind = "integer" if widget.field_class.__name__ == "IntegerField" else None
        assert kind is None or conn_fields[name]["schema"]["type"][0] == kind
    behaviour = CloudflareQueuesHook.get_ui_field_behaviour()
    info = connection_type["ui-field-behaviour"]
    assert behaviour == {
        "hidden_fields": info["hidden-fields"],
        "relabeling": info["relabeling"],
        "placeholders": info["placeholders"],
    }


def test_prefixed_extras_from_older_forms_are_read(
    emulator: CloudflareQueuesEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.create_queue("legacy")
    conn = emulator.airflow_connection()
    conn["extra"] = {
        "extra__cloudflare_queues__account_id": emulator.account_id,
        "extra__cloudflare_queues__queue": "legacy",
        "extra__cloudflare_queues__timeout": "",
    }
    monkeypatch.setenv("AIRFLOW_CONN_CFQ_LEGACY", json.dumps(conn))
    assert CloudflareQueuesHook("cfq_legacy").test_connection()[0]


@pytest.mark.airflow3
def test_message_queue_trigger_resolves_to_ours() -> None:
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    trigger = MessageQueueTrigger(
        scheme="cloudflare+queues", cloudflare_queue="inbox", ack="dag", max_messages_per_event=10
    )
    assert isinstance(trigger.trigger, CloudflareQueuesMessageTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_cfqueues.triggers.message.CloudflareQueuesMessageTrigger"
    assert kwargs["cloudflare_queue"] == "inbox" and kwargs["max_messages_per_event"] == 10
    assert json.loads(json.dumps(kwargs)) == kwargs


@pytest.mark.airflow3
def test_message_queue_trigger_queue_spellings() -> None:
    import warnings

    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # common-messaging deprecates queue= (URIs)
        by_uri = MessageQueueTrigger(queue="cloudflare+queues://inbox", batch_size=5)
        assert by_uri.serialize()[1]["cloudflare_queue"] == "inbox" and by_uri.serialize()[1]["batch_size"] == 5
        bare = MessageQueueTrigger(scheme="cloudflare+queues", queue="inbox")
        with pytest.raises(
            ValueError, match=r"write MessageQueueTrigger\(scheme='cloudflare\+queues', cloudflare_queue='inbox'\)"
        ):
            bare.serialize()
    typo = MessageQueueTrigger(scheme="cloudflare+queues", cloudflare_queue="inbox", poll_intervall=5)
    with pytest.raises(TypeError, match="'poll_intervall' \\(did you mean 'poll_interval'\\?\\)"):
        typo.serialize()


@pytest.mark.airflow3
def test_the_package_imports_without_common_messaging() -> None:
    probe = (
        "import sys, airflow\n"
        "class Hide:  # as if the common-messaging provider were not installed\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.startswith('airflow.providers.common.messaging'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "for name in [m for m in sys.modules if m.startswith('airflow.providers.common.messaging')]:\n"
        "    del sys.modules[name]\n"
        "import airflow_provider_cfqueues.hooks.queues, airflow_provider_cfqueues.operators.queues\n"
        "import airflow_provider_cfqueues.sensors.queues, airflow_provider_cfqueues.triggers.queues\n"
        "import airflow_provider_cfqueues.get_provider_info\n"
        "try:\n"
        "    import airflow_provider_cfqueues.messaging.provider\n"
        "except ImportError:\n"
        "    print('OK')\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert result.stdout.strip().splitlines()[-1] == "OK", result.stderr


@pytest.mark.airflow3
def test_message_trigger_events_carry_leases_and_ack_nothing(
    emulator: CloudflareQueuesEmulator, connection: str
) -> None:
    emulator.create_queue("inbox")
    CloudflareQueuesHook(queue="inbox").push_messages([{"n": n} for n in range(250)])
    trigger = CloudflareQueuesMessageTrigger(
        cloudflare_queue="inbox",
        ack="dag",
        batch_size=100,
        max_messages_per_event=150,
        visibility_timeout=60,
        poll_interval=0.05,
    )
    first, second = asyncio.run(trigger_events(trigger, 2))
    assert len(first["messages"]) == 150 and len(second["messages"]) == 100  # type: ignore[arg-type]
    assert first["acked"] is False and first["leased_for_seconds"] == 60 and first["ack"] == "dag"
    message = first["messages"][0]  # type: ignore[index]
    assert set(message) >= {"id", "lease_id", "body", "attempts"} and message["body"] == {"n": 0}
    # at-least-once: everything is still leased, waiting for the DAG to ack it
    assert {m.state for m in emulator.messages("inbox")} == {"leased"}
    json.dumps(first)  # events are JSON-serializable


@pytest.mark.airflow3
def test_message_trigger_ack_emitted(emulator: CloudflareQueuesEmulator, connection: str) -> None:
    emulator.create_queue("inbox")
    CloudflareQueuesHook(queue="inbox").push_messages(["a", "b"])
    emulator.app.faults = ScriptedFaults({"pull": ["error"] * 6})  # more than the hook retries: logged, polled again
    trigger = CloudflareQueuesMessageTrigger(cloudflare_queue="inbox", ack="emitted", poll_interval=0.05)
    (event,) = asyncio.run(trigger_events(trigger, 1))
    assert event["acked"] is True and [m["body"] for m in event["messages"]] == ["a", "b"]  # type: ignore[index]
    assert "lease_id" not in event["messages"][0]  # type: ignore[index]
    assert emulator.metrics("inbox")["backlog_count"] == 0


@pytest.mark.airflow3
def test_message_trigger_fails_on_permanent_errors(emulator: CloudflareQueuesEmulator, connection: str) -> None:
    from airflow_provider_cfqueues.api.errors import CloudflareQueuesPullNotEnabledError

    emulator.create_queue("no-pull", http_pull=False)
    trigger = CloudflareQueuesMessageTrigger(cloudflare_queue="no-pull", poll_interval=0.05)
    with pytest.raises(CloudflareQueuesPullNotEnabledError):
        asyncio.run(trigger_events(trigger, 1))


def test_event_driven_scheduling_needs_airflow_3_and_says_so() -> None:
    from airflow_provider_cfqueues._compat import AIRFLOW_3

    if AIRFLOW_3:
        assert CloudflareQueuesMessageTrigger(cloudflare_queue="inbox").cloudflare_queue == "inbox"
    else:
        with pytest.raises(RuntimeError, match="needs Airflow 3"):
            CloudflareQueuesMessageTrigger(cloudflare_queue="inbox")
