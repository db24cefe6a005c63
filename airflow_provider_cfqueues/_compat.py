"""
The one place that imports Airflow: base classes and helpers that moved between Airflow 2.11 and 3.x.

Everything else in the package imports them from here, so that supporting another Airflow release
means changing this file only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow import __version__ as AIRFLOW_VERSION
from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow.triggers.base import BaseTrigger, TriggerEvent
from packaging.version import Version

AIRFLOW_3 = Version(AIRFLOW_VERSION).major >= 3

if AIRFLOW_3:  # the Task SDK
    from airflow.sdk import (
        BaseHook,
        BaseNotifier,
        BaseOperator,
        BaseSensorOperator,
        Connection,
        PokeReturnValue,
        conf,
    )
    from airflow.sdk.definitions._internal.abstractoperator import DEFAULT_RETRY_DELAY
    from airflow.sdk.definitions.mappedoperator import OperatorPartial
    from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, AirflowSkipException
    from airflow.sdk.log import mask_secret
    from airflow.sdk.module_loading import import_string  # type: ignore[attr-defined]
else:  # pragma: no cover - Airflow 2.11
    from airflow.configuration import conf  # type: ignore
    from airflow.exceptions import AirflowException, AirflowSensorTimeout, AirflowSkipException  # type: ignore
    from airflow.hooks.base import BaseHook  # type: ignore
    from airflow.models import BaseOperator, Connection  # type: ignore
    from airflow.models.abstractoperator import DEFAULT_RETRY_DELAY  # type: ignore
    from airflow.models.mappedoperator import OperatorPartial  # type: ignore
    from airflow.notifications.basenotifier import BaseNotifier  # type: ignore
    from airflow.sensors.base import BaseSensorOperator, PokeReturnValue  # type: ignore
    from airflow.utils.log.secrets_masker import mask_secret  # type: ignore
    from airflow.utils.module_loading import import_string  # type: ignore


# -- feature gates, decided once at import -----------------------------------------------------------

_event_trigger: type[Any] | None
_stream_producer: type[Any] | None
_reject: Callable[[], None] | None
try:  # Airflow 3: event-driven scheduling (asset watchers)
    from airflow.triggers.base import BaseEventTrigger

    _event_trigger = BaseEventTrigger
except ImportError:  # pragma: no cover - Airflow 2.11
    _event_trigger = None
try:  # Airflow 3.3: shared streams with an ack channel
    from airflow.triggers.shared_stream import SharedStreamProducer
    from airflow.triggers.shared_stream import reject_shared_stream_event as _reject_event

    _stream_producer, _reject = SharedStreamProducer, _reject_event
except ImportError:  # pragma: no cover - before 3.3
    _stream_producer, _reject = None, None
#: whether this Airflow has shared streams with an ack channel (3.3+)
SHARED_STREAMS = _stream_producer is not None


class _Airflow3Only(BaseTrigger):
    """Stands in for Airflow 3's ``BaseEventTrigger`` on 2.11: constructing the trigger says why not."""

    def __init__(self, **kwargs: Any) -> None:
        raise RuntimeError(
            "CloudflareQueuesMessageTrigger drives event-driven scheduling (asset watchers), which needs "
            "Airflow 3. On Airflow 2, poll with CloudflareQueuesBacklogSensor instead."
        )


#: the message trigger's base class: Airflow 3's ``BaseEventTrigger``, or one that refuses on 2.11
EventTriggerBase: type[Any] = _event_trigger if _event_trigger is not None else _Airflow3Only
#: the shared-stream producer's base class (``object`` before Airflow 3.3, where nothing uses it)
StreamProducerBase: type[Any] = _stream_producer if _stream_producer is not None else object


def reject_shared_stream_event() -> None:
    """Airflow 3.3's ``reject_shared_stream_event``: refuse the raw event the calling filter holds."""
    assert _reject is not None, "shared streams need Airflow 3.3"
    _reject()


__all__ = [
    "AIRFLOW_3",
    "AIRFLOW_VERSION",
    "DEFAULT_RETRY_DELAY",
    "SHARED_STREAMS",
    "AirflowException",
    "AirflowProviderDeprecationWarning",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseHook",
    "BaseNotifier",
    "BaseOperator",
    "BaseSensorOperator",
    "BaseTrigger",
    "Connection",
    "EventTriggerBase",
    "OperatorPartial",
    "PokeReturnValue",
    "StreamProducerBase",
    "TriggerEvent",
    "conf",
    "import_string",
    "mask_secret",
    "reject_shared_stream_event",
]
