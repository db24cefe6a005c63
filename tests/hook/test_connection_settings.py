"""Connection -> settings: every form of the base URL, and errors that name the field."""

from __future__ import annotations

import json

import pytest

from airflow_provider_cfqueues._compat import Connection
from airflow_provider_cfqueues.api.errors import CloudflareQueuesConfigError
from airflow_provider_cfqueues.api.retry import RetryPolicy
from airflow_provider_cfqueues.hooks.connection import base_url_from, settings_from_connection

ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"


@pytest.mark.parametrize(
    ("host", "port", "schema", "expected"),
    [
        (None, None, None, "https://api.cloudflare.com/client/v4"),
        ("", None, "", "https://api.cloudflare.com/client/v4"),
        ("http://127.0.0.1:8787/client/v4", None, None, "http://127.0.0.1:8787/client/v4"),
        ("http://127.0.0.1:8787/client/v4/", None, None, "http://127.0.0.1:8787/client/v4"),
        ("http://127.0.0.1", 8787, "client/v4", "http://127.0.0.1:8787/client/v4"),
        ("http://localhost:9000", None, None, "http://localhost:9000/client/v4"),
        ("api.example.com", None, None, "https://api.example.com/client/v4"),
    ],
)
def test_base_url(host: str | None, port: int | None, schema: str | None, expected: str) -> None:
    assert base_url_from(host, port, schema) == expected


@pytest.mark.parametrize("host", ["ftp://x", "http://", "http://h/p?q=1"])
def test_bad_base_urls(host: str) -> None:
    with pytest.raises(CloudflareQueuesConfigError, match=r"host|query"):
        base_url_from(host, None, None)


def conn(**kwargs: object) -> Connection:
    return Connection(conn_id="cfq", conn_type="cloudflare_queues", **kwargs)  # type: ignore[arg-type]


def test_json_form() -> None:
    c = Connection.from_json(
        json.dumps(
            {
                "conn_type": "cloudflare_queues",
                "host": "http://127.0.0.1:1/client/v4",
                "password": "tok",
                "extra": {"account_id": ACCOUNT.upper(), "queue": "orders", "timeout": "5"},
            }
        ),
        conn_id="cfq",
    )
    settings = settings_from_connection(c)
    assert (settings.base_url, settings.account_id, settings.queue, settings.timeout) == (
        "http://127.0.0.1:1/client/v4",
        ACCOUNT,
        "orders",
        5.0,
    )
    assert "tok" not in repr(settings)


def test_uri_form() -> None:
    uri = f"cloudflare-queues://http://:s3cr%2Ft@127.0.0.1:8787/client%2Fv4?account_id={ACCOUNT}&queue=orders"
    settings = settings_from_connection(Connection(conn_id="cfq", uri=uri))
    assert settings.base_url == "http://127.0.0.1:8787/client/v4"
    assert settings.token == "s3cr/t" and settings.queue == "orders"


def test_hook_arguments_win() -> None:
    policy = RetryPolicy(max_attempts=2)
    settings = settings_from_connection(
        conn(password="t", extra=json.dumps({"account_id": "f" * 32, "queue": "a"})),
        account_id=ACCOUNT,
        queue="b",
        retry=policy,
        timeout=3,
    )
    assert (settings.account_id, settings.queue, settings.retry, settings.timeout) == (ACCOUNT, "b", policy, 3)


def test_retry_settings_from_extras() -> None:
    settings = settings_from_connection(
        conn(password="t", extra=json.dumps({"account_id": ACCOUNT, "max_attempts": 3, "retry_total_timeout": 9}))
    )
    assert settings.retry.max_attempts == 3 and settings.retry.total_timeout == 9


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"extra": json.dumps({"account_id": ACCOUNT})}, "has no API token.*password"),
        ({"password": "  ", "extra": json.dumps({"account_id": ACCOUNT})}, "has no API token"),
        ({"password": "t"}, "has no account id.*'account_id' extra"),
        ({"password": "t", "extra": json.dumps({"account_id": "../x"})}, "account_id must be 32 hexadecimal"),
        ({"password": "t", "extra": json.dumps({"account_id": ACCOUNT, "queue": "a/b"})}, "queue must be"),
        ({"password": "t", "extra": json.dumps({"account_id": ACCOUNT, "timeout": "soon"})}, "'timeout' must be sec"),
        ({"password": "t", "extra": json.dumps({"account_id": ACCOUNT, "timeout": 0})}, "'timeout' must be more"),
        ({"password": "t", "port": 80, "extra": json.dumps({"account_id": ACCOUNT})}, "no host"),
    ],
)
def test_errors_name_the_field(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(CloudflareQueuesConfigError, match=match) as info:
        settings_from_connection(conn(**kwargs))
    assert "'cfq'" in str(info.value)


def test_plain_http_to_a_remote_host_warns(caplog: pytest.LogCaptureFixture) -> None:
    settings_from_connection(
        conn(password="t", host="http://queues.example.com", extra=json.dumps({"account_id": ACCOUNT}))
    )
    assert "plain HTTP" in caplog.text
    caplog.clear()
    settings_from_connection(conn(password="t", host="http://127.0.0.1:1", extra=json.dumps({"account_id": ACCOUNT})))
    assert "plain HTTP" not in caplog.text
