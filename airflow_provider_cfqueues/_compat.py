"""
The one place that imports Airflow: base classes and helpers that moved between Airflow 2.11 and 3.x.

Everything else in the package imports them from here, so that supporting another Airflow release
means changing this file only.
"""

from __future__ import annotations

try:  # Airflow 3: the Task SDK
    from airflow.sdk import BaseHook, BaseOperator, BaseSensorOperator, Connection, PokeReturnValue
    from airflow.sdk.exceptions import AirflowException
    from airflow.sdk.log import mask_secret
except ImportError:  # pragma: no cover - Airflow 2.11
    from airflow.exceptions import AirflowException  # type: ignore
    from airflow.hooks.base import BaseHook  # type: ignore
    from airflow.models import BaseOperator, Connection  # type: ignore
    from airflow.sensors.base import BaseSensorOperator, PokeReturnValue  # type: ignore
    from airflow.utils.log.secrets_masker import mask_secret  # type: ignore

__all__ = [
    "AirflowException",
    "BaseHook",
    "BaseOperator",
    "BaseSensorOperator",
    "Connection",
    "PokeReturnValue",
    "mask_secret",
]
