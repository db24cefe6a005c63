"""Validation of emulator traffic against the official OpenAPI fragment (tests/data/)."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from openapi_core import OpenAPI
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.testing import MockRequest, MockResponse

from airflow_provider_cfqueues.emulator.app import Reply

SPEC_PATH = Path(__file__).parent / "data" / "cloudflare-queues-openapi.json"


@cache
def openapi() -> OpenAPI:
    return OpenAPI.from_dict(json.loads(SPEC_PATH.read_text()))


class OpenAPIRecorder:
    """
    An emulator observer that validates every exchange the spec covers: the response always, the
    request when the emulator accepted it (requests the emulator rejects are invalid on purpose).
    """

    def __init__(self, host_url: str) -> None:
        self.host_url = host_url
        self.validated: list[str] = []
        self.not_covered: list[str] = []
        self.violations: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, method: str, target: str, headers: Mapping[str, str], body: bytes, reply: Reply) -> None:
        if reply.drop or reply.status >= 500 or reply.content_type != "application/json":
            return  # lost, truncated-by-design and 5xx answers are outside the spec's responses
        path, _, query = target.partition("?")
        request = MockRequest(
            self.host_url,
            method.lower(),
            path,
            args=dict(pair.split("=", 1) for pair in query.split("&") if "=" in pair),
            headers=dict(headers),
            data=body or None,
            content_type=headers.get("content-type", "application/json").split(";")[0],
        )
        try:
            json.loads(reply.body)
        except ValueError:
            return  # a truncated answer injected on purpose
        response = MockResponse(reply.body, status_code=reply.status, content_type="application/json")
        label = f"{method} {path} -> {reply.status}"
        try:
            openapi().validate_response(request, response)
            if reply.status < 400:
                openapi().validate_request(request)
        except PathError:
            with self._lock:
                self.not_covered.append(label)
            return
        except Exception as err:  # any validation error is a violation to report
            with self._lock:
                self.violations.append(f"{label}: {type(err).__name__}: {err}; body={reply.body[:300]!r}")
            return
        with self._lock:
            self.validated.append(label)
