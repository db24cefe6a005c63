"""
The one place that imports Airflow: base classes and helpers that moved between Airflow 2.11 and 3.x.

Everything else in the package imports them from here, so that supporting another Airflow release
means changing this file only.
"""

from __future__ import annotations

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


def shared_stream_producer_base() -> type[Any] | None:
    """Airflow 3.3's ``SharedStreamProducer`` (shared streams with an ack channel), or ``None`` before 3.3."""
    try:
        from airflow.triggers.shared_stream import SharedStreamProducer
    except ImportError:
        return None
    return SharedStreamProducer


def reject_shared_stream_event() -> None:
    """Airflow 3.3's ``reject_shared_stream_event``: refuse the raw event the calling filter holds."""
    from airflow.triggers.shared_stream import reject_shared_stream_event as reject

    reject()


__all__ = [
    "AIRFLOW_3",
    "AIRFLOW_VERSION",
    "DEFAULT_RETRY_DELAY",
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
    "OperatorPartial",
    "PokeReturnValue",
    "TriggerEvent",
    "conf",
    "import_string",
    "mask_secret",
    "reject_shared_stream_event",
    "shared_stream_producer_base",
]
