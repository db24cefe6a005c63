"""
From an Airflow connection to the settings the hook needs: API base URL, token, account, default
queue, timeouts and retry policy. Pure: it reads the connection's fields and nothing else.

Connection fields:

* password: the Cloudflare API token (Queues Edit permission).
* host: the API base URL, scheme included (``http://127.0.0.1:8787/client/v4`` for the emulator);
  empty means ``https://api.cloudflare.com/client/v4``. A host without a scheme gets ``https://``;
  ``port`` and ``schema`` (the path), when set, complete it; a URL without a path gets ``/client/v4``.
* extras: ``account_id`` (required unless the hook is given one), ``queue`` (default queue id or
  name), ``timeout`` (seconds per request, default 30), ``max_attempts`` (per request, default 5),
  ``retry_total_timeout`` (seconds, default 120), ``retry_initial_backoff`` and ``retry_max_backoff``
  (seconds, default 0.5 and 20), ``max_retry_wait`` (the longest ``Retry-After`` waited for,
  seconds, default 300).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..api import units
from ..api.errors import CloudflareQueuesConfigError, CloudflareQueuesValidationError
from ..api.limits import DEFAULT_BASE_URL
from ..api.operations import validate_account_id, validate_queue
from ..api.retry import RetryPolicy

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class ConnectionSettings:
    """
    What the hook needs from a connection. The token never appears in ``repr()``.

    :param conn_id: the Airflow connection id.
    :param base_url: the API base URL.
    :param account_id: the validated account id.
    :param token: the API token.
    :param queue: the default queue (id or name), if any.
    :param timeout: seconds to wait for each answer.
    :param retry: the retry policy.
    """

    conn_id: str
    base_url: str
    account_id: str
    token: str = field(repr=False)
    queue: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def base_url_from(host: str | None, port: int | None, schema: str | None) -> str:
    """The API base URL from a connection's host, port and schema (see the module docstring)."""
    if not host:
        if port or schema:
            raise CloudflareQueuesConfigError("the connection sets a port or schema but no host (API base URL)")
        return DEFAULT_BASE_URL
    url = host.strip()
    if "://" not in url:
        url = f"https://{url}"
    try:
        parts = urlsplit(url)
        url_port = parts.port  # raises on a port that is not a number from 0 to 65535
        hostname = parts.hostname
    except ValueError as err:
        raise CloudflareQueuesConfigError(f"the host (API base URL) {_scrubbed(host)!r} is malformed: {err}") from None
    if parts.username is not None or parts.password is not None:
        raise CloudflareQueuesConfigError(
            f"the host (API base URL) {_scrubbed(host)!r} carries credentials: put the API token in the "
            "connection's password field, and only the URL in the host"
        )
    if parts.scheme not in ("http", "https") or not hostname:
        raise CloudflareQueuesConfigError(f"the host (API base URL) must be an http(s) URL, got {host!r}")
    netloc = parts.netloc
    if port and url_port is None:
        if not 0 < port < 65_536:
            raise CloudflareQueuesConfigError(f"the connection's port must be from 1 to 65535, got {port!r}")
        netloc = f"{netloc}:{port}"
    path = parts.path.rstrip("/")
    if schema:
        path = f"{path}/{schema.strip('/')}"
    if not path:
        path = "/client/v4"
    if parts.query or parts.fragment:
        raise CloudflareQueuesConfigError("the API base URL must not carry a query or fragment")
    return f"{parts.scheme}://{netloc}{path}"


def _scrubbed(url: str) -> str:
    """``url`` without whatever stands before an ``@`` in its authority (user names, passwords, tokens)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{path}"


def validate_token(token: str, conn_id: str) -> str:
    """A token travels in an HTTP header: printable ASCII only. The error never shows the token."""
    for position, char in enumerate(token):
        if not "!" <= char <= "~":
            kind = (
                "a line break"
                if char in "\r\n"
                else "a space"
                if char.isspace()
                else "a non-ASCII or control character"
            )
            raise CloudflareQueuesConfigError(
                f"connection {conn_id!r}: the API token holds {kind} at position {position + 1}, which cannot "
                "travel in an HTTP header; paste the token again (Cloudflare tokens are letters, digits, '-' and '_')"
            )
    return token


def is_loopback(hostname: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _seconds(extras: dict[str, Any], key: str, default: float, conn_id: str) -> float:
    """A duration extra, read by the provider's one set of rules (seconds, more than 0)."""
    try:
        seconds = units.duration(extras.get(key, default), f"extra {key!r}", above_zero=True)
    except CloudflareQueuesValidationError as err:
        raise CloudflareQueuesConfigError(f"connection {conn_id!r}: {err.detail}") from None
    return default if seconds is None else seconds


def _count(extras: dict[str, Any], key: str, default: int, conn_id: str) -> int:
    """A whole-number extra (at least 1)."""
    try:
        number = units.count(extras.get(key, default), f"extra {key!r}", low=1)
    except CloudflareQueuesValidationError as err:
        raise CloudflareQueuesConfigError(f"connection {conn_id!r}: {err.detail}") from None
    return default if number is None else number


def settings_from_connection(
    conn: Any,
    *,
    account_id: str | None = None,
    queue: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
) -> ConnectionSettings:
    """
    Read and validate a connection. Hook arguments (``account_id``, ``queue``, ``retry``,
    ``timeout``) win over the connection's extras. Errors name the field to fix.
    """
    conn_id = str(conn.conn_id)
    token = (conn.password or "").strip()
    if not token:
        raise CloudflareQueuesConfigError(
            f"connection {conn_id!r} has no API token: put a Cloudflare API token with the Queues Edit "
            "permission in the connection's password field"
        )
    validate_token(token, conn_id)
    extras = dict(conn.extra_dejson or {})
    for key in list(extras):  # forms of older Airflow releases prefix the extras
        if key.startswith("extra__cloudflare_queues__"):
            extras.setdefault(key.removeprefix("extra__cloudflare_queues__"), extras[key])
    extras = {k: v for k, v in extras.items() if v not in ("", None)}
    account = account_id or extras.get("account_id")
    if not account:
        raise CloudflareQueuesConfigError(
            f"connection {conn_id!r} has no account id: set its 'account_id' extra (the Account ID shown on "
            "the Cloudflare dashboard) or pass account_id= to the hook or operator"
        )
    try:
        account = validate_account_id(account)
        default_queue = queue or extras.get("queue") or None
        if default_queue is not None:
            default_queue = validate_queue(default_queue)
    except CloudflareQueuesValidationError as err:
        raise CloudflareQueuesConfigError(f"connection {conn_id!r}: {err}") from None
    try:
        base_url = base_url_from(conn.host, conn.port, conn.schema)
    except CloudflareQueuesConfigError as err:
        raise CloudflareQueuesConfigError(f"connection {conn_id!r}: {err}") from None
    hostname = urlsplit(base_url).hostname or ""
    if base_url.startswith("http://") and not is_loopback(hostname):
        log.warning(
            "Connection %r sends the API token over plain HTTP to %s; use https unless this is a local emulator",
            conn_id,
            hostname,
        )
    if retry is None:
        retry = RetryPolicy(
            max_attempts=_count(extras, "max_attempts", 5, conn_id),
            total_timeout=_seconds(extras, "retry_total_timeout", 120, conn_id),
            initial_backoff=_seconds(extras, "retry_initial_backoff", 0.5, conn_id),
            max_backoff=_seconds(extras, "retry_max_backoff", 20, conn_id),
            max_retry_wait=_seconds(extras, "max_retry_wait", 300, conn_id),
        )
    return ConnectionSettings(
        conn_id=conn_id,
        base_url=base_url,
        account_id=account,
        token=token,
        queue=default_queue,
        timeout=timeout if timeout is not None else _seconds(extras, "timeout", DEFAULT_TIMEOUT, conn_id),
        retry=retry,
    )
