"""Purge messages by reference: the ones a peek selected, without spending their delivery attempts."""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..api.errors import CloudflareQueuesValidationError
from .base import QUEUE_TEMPLATE_FIELDS, CloudflareQueuesBaseOperator, closes_hook

if TYPE_CHECKING:
    from airflow.sdk import Context


class CloudflareQueuesPurgeMessagesOperator(CloudflareQueuesBaseOperator):
    """
    Delete the messages with the given refs (from :class:`CloudflareQueuesPeekOperator`) from the queue
    named — never the connection's default queue. A purge does not count as a delivery. A message that
    was delivered after it was peeked is not purged (its ref is no longer valid: the pull that has it
    acks or retries it), and neither is one already purged: each such ref is listed, with the service's
    reason, and the task succeeds. Irreversible for the messages it deletes.

    Returns ``{"purged", "not_purged", "duplicates"}`` (``not_purged``: ref -> why; ``duplicates``: refs
    given more than once, each purged and counted once).

    :param cloudflare_queue: queue id or name (templated); required.
    :param refs: a list of refs, peeked messages (as the Peek operator returns them) or mappings with
        ``ref`` (templated; e.g. the output of a task that selected them). A template that renders a list
        as text is read back; one that renders ``None``, an empty text or a bare string fails the task,
        before anything is sent. An empty list purges nothing, once the queue is confirmed to exist.
    :param account_id: account id (templated).
    :param cloudflare_queues_conn_id: the Airflow connection (templated).
    """

    template_fields: Sequence[str] = (*QUEUE_TEMPLATE_FIELDS, "refs")
    ui_color = "#e8574a"
    _needs_named_queue = True

    def __init__(self, *, refs: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.refs = refs

    @closes_hook
    def execute(self, context: Context) -> dict[str, Any]:
        queue = self.queue_ref
        refs = rendered_refs(self.refs)
        result = self.hook.purge_messages(queue, refs)
        self.log.info(
            "Purged %d of %d message(s) of queue %s by ref; not purged: %d; given more than once: %d",
            result.purged,
            len(refs),
            queue,
            len(result.warnings),
            len(result.duplicates),
        )
        return {"purged": result.purged, "not_purged": result.warnings, "duplicates": result.duplicates}


def rendered_refs(refs: Any) -> list[Any]:
    """
    ``refs`` as a template left it: a list (``render_template_as_native_obj``), or the text of one
    (JSON, or the Python form Jinja writes for a list) read back; ``None`` items (gaps a mapped selection
    leaves) dropped. ``None``, ``"None"``, an empty text and any other text are errors, never a ref.
    """
    if isinstance(refs, str):
        text = refs.strip()
        if not text.startswith("["):
            raise CloudflareQueuesValidationError(
                f"refs rendered to {text[:60]!r}, not a list of refs: pass a list (an XCom pull that found "
                "nothing renders 'None'), or a template that renders one"
            )
        try:
            refs = json.loads(text)
        except ValueError:
            try:
                refs = ast.literal_eval(text)  # Jinja writes a list of strings as ['a', 'b']
            except (ValueError, SyntaxError):
                raise CloudflareQueuesValidationError(
                    f"refs rendered to {text[:60]!r}, which is not a list (JSON or Python)"
                ) from None
    if refs is None:
        raise CloudflareQueuesValidationError("refs is None: pass a list of refs ([] purges nothing)")
    if not isinstance(refs, (list, tuple)):
        raise CloudflareQueuesValidationError(f"refs must be a list of refs, got {type(refs).__name__}")
    return [ref for ref in refs if ref is not None]
