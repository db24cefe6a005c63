"""
Command line: ``python -m airflow_provider_cfqueues.emulator`` (also installed as ``cfqueues-emulator``).

On start it prints the API base URL on the first line of standard output, then one line
``<queue name> <queue id>`` per ``--queue``; everything else goes to standard error: the account id,
the token, and a ready-to-paste ``AIRFLOW_CONN_CLOUDFLARE_QUEUES_DEFAULT`` value. Bad arguments (a
busy port, a bad or repeated queue name, a bad fault spec) get one line saying what to change, and
exit status 2. It stops cleanly on SIGINT and SIGTERM.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from . import DEFAULT_ACCOUNT_ID, CloudflareQueuesEmulator
from .faults import ENDPOINTS, FaultPlan, parse_fault_spec
from .ratelimit import PLANS, parse_budget
from .server import request_log
from .state import JSON_BODY_MODES, QUEUE_NAME_RE, ApiError

DEFAULT_TOKEN = "emulator-token"  # noqa: S105 - a local fake service's well-known token


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cfqueues-emulator",
        description="Local emulator of the Cloudflare Queues HTTP API (/client/v4).",
        epilog=(
            "Fault specs: ENDPOINT:KEY=VALUE[,KEY=VALUE...] with ENDPOINT one of *, "
            + ", ".join(ENDPOINTS)
            + "; KEY one of error, throttle, html, lost, truncated (rates 0..1), latency, latency_jitter "
            "(seconds), retry_after (whole seconds). Example: --fault '*:error=0.1,latency=0.05'"
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default: 0)")
    parser.add_argument(
        "--token",
        default=os.environ.get("CFQUEUES_EMULATOR_TOKEN", DEFAULT_TOKEN),
        help=f"API token clients must send as a Bearer token (default: $CFQUEUES_EMULATOR_TOKEN or {DEFAULT_TOKEN!r})",
    )
    parser.add_argument(
        "--account-id", default=DEFAULT_ACCOUNT_ID, help=f"account id owning the queues (default: {DEFAULT_ACCOUNT_ID})"
    )
    parser.add_argument(
        "--queue",
        action="append",
        default=[],
        metavar="NAME[:KEY=VALUE,...]",
        help="create a queue with an http_pull consumer (repeatable); consumer settings after a colon: "
        f"{', '.join(QUEUE_SPEC_KEYS)}, e.g. --queue orders:max_retries=2,dead_letter_queue=orders-dlq",
    )
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC", help="inject faults (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault injection (default: 0)")
    parser.add_argument(
        "--rate-limit",
        metavar="REQUESTS/SECONDS",
        help="model Cloudflare's API budget per account (all its tokens), e.g. 1200/300 (pulls and acks exempt; "
        "going over blocks every call for a window). Default: unlimited",
    )
    parser.add_argument(
        "--queue-throughput",
        type=int,
        metavar="MESSAGES",
        help="messages per second each queue takes, pushed or pulled (Cloudflare: 5000). Default: unlimited",
    )
    parser.add_argument(
        "--json-bodies",
        choices=JSON_BODY_MODES,
        default="base64",
        help="how pulls send json bodies: base64 as documented (default), plain JSON text as also seen live, or mixed",
    )
    parser.add_argument(
        "--read-only-token",
        metavar="TOKEN",
        help="a second token with the Queues Read permission only (403 on pushes, pulls, acks and changes)",
    )
    parser.add_argument(
        "--purge-seconds",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="how long a purge runs before it completes (default: 0, at once)",
    )
    parser.add_argument(
        "--plan",
        choices=PLANS,
        default="paid",
        help="the account's plan: free keeps messages 24 h at most and allows 10,000 operations a day (429, "
        "code 10253, past them); default: paid",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to standard error")
    parser.add_argument(
        "--quiet", action="store_true", help="no start banner on standard error (errors are still printed)"
    )
    return parser


#: consumer settings a --queue spec may set, and how each is read
QUEUE_SPEC_KEYS = ("max_retries", "retry_delay", "visibility_timeout", "batch_size", "dead_letter_queue")


def parse_queue_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``orders:max_retries=2,dead_letter_queue=orders-dlq`` -> the name and the keyword arguments of
    :meth:`CloudflareQueuesEmulator.create_queue` (``visibility_timeout`` in seconds)."""
    name, _, options = spec.partition(":")
    if not QUEUE_NAME_RE.fullmatch(name):
        raise ValueError(
            f"--queue {name!r}: a queue name is 1 to 63 lowercase letters, digits or '-', starting and ending "
            "with a letter or digit"
        )
    settings: dict[str, Any] = {}
    for option in filter(None, options.split(",")):
        key, sep, value = option.partition("=")
        if not sep or key not in QUEUE_SPEC_KEYS:
            raise ValueError(
                f"--queue {spec}: {option!r} is not KEY=VALUE with KEY one of {', '.join(QUEUE_SPEC_KEYS)}"
            )
        if key in settings or (key == "visibility_timeout" and "visibility_timeout_ms" in settings):
            raise ValueError(f"--queue {spec}: {key} is given more than once")
        if key == "dead_letter_queue":
            settings[key] = value
            continue
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"--queue {spec}: {key} must be a whole number, got {value!r}") from None
        if key == "visibility_timeout":
            settings["visibility_timeout_ms"] = number * 1000
        else:
            settings[key] = number
    return name, settings


def _fail(message: str) -> int:
    print(f"cfqueues-emulator: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    if args.verbose:
        request_log.setLevel(logging.INFO)
    try:
        rules = dict(parse_fault_spec(spec) for spec in args.fault)
        if args.rate_limit:
            parse_budget(args.rate_limit)
        if not math.isfinite(args.purge_seconds) or args.purge_seconds < 0:
            raise ValueError(f"--purge-seconds must be a number of seconds >= 0, got {args.purge_seconds}")
        if args.queue_throughput is not None and args.queue_throughput < 1:
            raise ValueError(f"--queue-throughput must be at least 1, got {args.queue_throughput}")
    except ValueError as err:
        return _fail(str(err))
    try:
        queues = [parse_queue_spec(spec) for spec in args.queue]
    except ValueError as err:
        return _fail(str(err))
    names = [name for name, _ in queues]
    for name in names:
        if names.count(name) > 1:
            return _fail(f"--queue {name} is given more than once")
    try:
        emulator = CloudflareQueuesEmulator(
            host=args.host,
            port=args.port,
            token=args.token,
            account_id=args.account_id,
            faults=FaultPlan(rules=rules, seed=args.seed),
            json_bodies=args.json_bodies,
            rate_limit=args.rate_limit,
            queue_throughput=args.queue_throughput,
            purge_seconds=args.purge_seconds,
            read_only_token=args.read_only_token,
            plan=args.plan,
        )
    except ValueError as err:
        return _fail(str(err))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # every queue first, then the consumers: a queue named as another's dead-letter queue is the one given
    # by its own --queue, whatever the order; a bad setting is refused before anything is served
    ids = {}
    for name, _settings in queues:
        try:
            ids[name] = emulator.create_queue(name, http_pull=False).id
        except (ApiError, ValueError) as err:
            return _fail(f"--queue {name}: {getattr(err, 'message', err)}")
    for (name, settings), spec in zip(queues, args.queue, strict=True):
        try:
            emulator.create_consumer(name, **settings)
        except (ApiError, ValueError) as err:
            return _fail(f"--queue {spec}: {getattr(err, 'message', err)}")
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        emulator.start()
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            return _fail(
                f"port {args.port} on {args.host} is in use: pick another with --port, or --port 0 for a free one"
            )
        return _fail(f"cannot listen on {args.host}:{args.port}: {err.strerror or err}")
    try:
        print(emulator.base_url, flush=True)
        for name, _ in queues:
            print(f"{name} {ids[name]}", flush=True)
        if not args.quiet:
            connection = json.dumps(emulator.airflow_connection())
            print(
                f"cfqueues-emulator: serving {emulator.base_url}; stop with Ctrl-C\n"
                f"  account id: {emulator.account_id}\n"
                f"  token:      {emulator.token}\n"
                f"  export AIRFLOW_CONN_CLOUDFLARE_QUEUES_DEFAULT='{connection}'",
                file=sys.stderr,
                flush=True,
            )
        stop.wait()
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
