"""
The connection form of the ``cloudflare_queues`` connection type, described once.

Airflow 3.2+ reads it from the provider info (``conn-fields`` and ``ui-field-behaviour``, see
:mod:`airflow_provider_cfqueues.get_provider_info`); older releases ask the hook
(``get_connection_form_widgets`` and ``get_ui_field_behaviour``). Both are generated from
:data:`EXTRA_FIELDS` and :data:`FIELD_BEHAVIOUR`, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CONN_TYPE = "cloudflare_queues"
HOOK_NAME = "Cloudflare Queues"


@dataclass(frozen=True)
class ExtraField:
    """One field of the connection's extras."""

    name: str
    label: str
    kind: str  # "string" or "integer" or "number"
    description: str
    placeholder: str = ""
    default: Any = None


EXTRA_FIELDS: tuple[ExtraField, ...] = (
    ExtraField(
        "account_id",
        "Account ID",
        "string",
        "Cloudflare account id (32 hex characters), shown on the dashboard's account home.",
        placeholder="023e105f4ecef8ad9ca31a8372d0c353",
    ),
    ExtraField(
        "queue",
        "Default queue",
        "string",
        "Queue id or name used when a task names none (optional).",
        placeholder="orders",
    ),
    ExtraField("timeout", "Request timeout (s)", "number", "Seconds to wait for each answer.", default=30),
    ExtraField(
        "max_attempts",
        "Attempts per request",
        "integer",
        "Tries of each API request, the first included: 5 retries a 429, 5xx or timeout up to 4 times.",
        default=5,
    ),
)

FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": ["schema", "login", "port"],
    "relabeling": {"host": "API base URL", "password": "API token"},
    "placeholders": {
        "host": "https://api.cloudflare.com/client/v4",  # the default; the form is too narrow for more
        "password": "API token with the Queues Edit permission",
        **{f.name: f.placeholder for f in EXTRA_FIELDS if f.placeholder},
    },
}


def provider_info_fields() -> dict[str, Any]:
    """``conn-fields`` as Airflow 3.2+ reads it from the provider info."""
    fields = {}
    for field in EXTRA_FIELDS:
        schema: dict[str, Any] = {"type": [field.kind, "null"]}
        if field.default is not None:
            schema["default"] = field.default
        fields[field.name] = {"label": field.label, "description": field.description, "schema": schema}
    return fields


def provider_info_behaviour() -> dict[str, Any]:
    """``ui-field-behaviour`` as Airflow 3.2+ reads it from the provider info."""
    return {
        "hidden-fields": list(FIELD_BEHAVIOUR["hidden_fields"]),
        "relabeling": dict(FIELD_BEHAVIOUR["relabeling"]),
        "placeholders": dict(FIELD_BEHAVIOUR["placeholders"]),
    }


def form_widgets() -> dict[str, Any]:
    """The same fields as WTForms widgets, for Airflow releases before 3.2."""
    from wtforms import IntegerField, StringField
    from wtforms.validators import Optional

    try:  # the widget and translations of the Flask UI (Airflow 2), when present
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
    except ImportError:
        BS3TextFieldWidget, lazy_gettext = None, str

    widgets = {}
    for field in EXTRA_FIELDS:
        field_class = IntegerField if field.kind == "integer" else StringField
        options: dict[str, Any] = {"validators": [Optional()], "description": field.description}
        if field.default is not None:
            options["default"] = field.default
        if BS3TextFieldWidget is not None:
            options["widget"] = BS3TextFieldWidget()
        widgets[field.name] = field_class(lazy_gettext(field.label), **options)
    return widgets
