"""
What every Cloudflare Queues operator (and the backlog sensor) shares: the Cloudflare queue, account
and connection arguments, the hook of one task execution, and small helpers.

The Cloudflare queue is ``cloudflare_queue=``. ``queue=`` and ``retry_delay=`` are Airflow's own
(``BaseOperator``'s executor queue, which Celery and Kubernetes route tasks by, and the delay between
task retries): they reach Airflow untouched, from arguments, ``default_args``, ``.partial()`` and
``.expand()`` alike. A ``queue=`` written on the task without a ``cloudflare_queue=`` is refused when the
DAG is parsed, and so are other providers' argument names (:mod:`.guidance`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, cast

from .._compat import AirflowException, AirflowSkipException, BaseOperator, OperatorPartial
from ..api.errors import (
    CloudflareQueuesConfigError,
    CloudflareQueuesDeliveryPausedError,
    CloudflareQueuesError,
    CloudflareQueuesValidationError,
)
from ..api.guidance import executor_queue_error, foreign_names_error
from ..hooks.queues import CloudflareQueuesHook

ExecuteT = TypeVar("ExecuteT", bound=Callable[..., Any])

DEFAULT_CONN_ID = CloudflareQueuesHook.default_conn_name
#: the templated arguments every operator (and the sensor) shares
QUEUE_TEMPLATE_FIELDS = ("cloudflare_queue", "account_id", "cloudflare_queues_conn_id")
#: what a pulling operator does when the queue's delivery is paused
ON_PAUSED = ("skip", "fail", "succeed")


def choice(value: str, choices: tuple[str, ...], name: str) -> str:
    """``value`` when it is one of ``choices``; else an error naming them."""
    if value not in choices:
        raise CloudflareQueuesValidationError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def closes_hook(method: ExecuteT) -> ExecuteT:
    """Close the operator's hook when ``method`` (its ``execute``) returns, fails or defers."""

    @functools.wraps(method)
    def run_then_close(self: CloudflareQueuesBaseOperator, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        finally:
            self.close_hook()

    return cast(ExecuteT, run_then_close)


@functools.cache
def _own_arguments(operator: type[BaseOperator]) -> frozenset[str]:
    """The keyword arguments the provider's classes in ``operator``'s MRO take (``subscription`` is ours on
    the event-subscription operators, though Pub/Sub's elsewhere)."""
    names: set[str] = set()
    for klass in operator.__mro__:
        if klass.__module__.startswith("airflow_provider_cfqueues") and "__init__" in vars(klass):
            names.update(inspect.signature(vars(klass)["__init__"]).parameters)
    return frozenset(names)


def check_arguments(operator: type[BaseOperator], task_id: object, given: dict[str, Any]) -> None:
    """
    Refuse, with guidance, arguments that mean something else here: another provider's names, and
    ``queue=`` (Airflow's executor queue) given without ``cloudflare_queue=``. ``given`` holds only what
    the DAG author wrote on the task (``default_args`` are merged later, and stay Airflow's).
    """
    if error := foreign_names_error(
        operator.__name__, [name for name in given if name not in _own_arguments(operator)]
    ):
        raise TypeError(error)
    uses_cloudflare_queue = getattr(operator, "_uses_cloudflare_queue", True)
    if uses_cloudflare_queue and "queue" in given and given.get("cloudflare_queue") is None:
        raise CloudflareQueuesConfigError(executor_queue_error(operator.__name__, str(task_id), given["queue"]))


class _CheckedPartial(OperatorPartial):
    """``.partial()`` of a Cloudflare operator: ``.expand()`` / ``.expand_kwargs()`` checks the arguments of
    both calls together (:func:`check_arguments`), then maps as Airflow does."""

    given: dict[str, Any]

    def expand(self, **mapped_kwargs: Any) -> Any:
        self._expand_called = True  # a refusal below is the error to show, not "never mapped"
        check_arguments(self.operator_class, self.kwargs["task_id"], {**self.given, **mapped_kwargs})
        return super().expand(**mapped_kwargs)

    def expand_kwargs(self, kwargs: Any, *, strict: bool = True) -> Any:
        self._expand_called = True
        if isinstance(kwargs, list) and all(isinstance(item, dict) for item in kwargs):
            for item in kwargs:
                check_arguments(self.operator_class, self.kwargs["task_id"], {**self.given, **item})
        elif "queue" in self.given and self.given.get("cloudflare_queue") is None:
            # the keys come from an XCom at run time: too late to tell which queue queue= meant
            raise CloudflareQueuesConfigError(
                executor_queue_error(self.operator_class.__name__, str(self.kwargs["task_id"]), self.given["queue"])
                + " With .expand_kwargs() of an XCom, name cloudflare_queue in .partial()."
            )
        return super().expand_kwargs(kwargs, strict=strict)


class CloudflareQueuesBaseOperator(BaseOperator):
    """
    The arguments every Cloudflare Queues operator (and the sensor) takes.

    :param cloudflare_queue: the Cloudflare queue, by id or name (templated; mappable with
        ``.expand(cloudflare_queue=[...])``); default: the connection's ``queue`` extra. (``queue=`` is
        Airflow's executor queue.)
    :param account_id: account id (templated); default: the connection's ``account_id`` extra.
    :param cloudflare_queues_conn_id: the Airflow connection (templated; default ``cloudflare_queues_default``).
    """

    #: the subclass acts on the queue destructively: it needs ``cloudflare_queue`` itself, never the
    #: connection's default queue
    _needs_named_queue = False
    #: the subclass acts on a Cloudflare queue (``False``: on something else, so ``queue=`` is never ambiguous)
    _uses_cloudflare_queue = True

    def __init__(
        self,
        *,
        cloudflare_queue: str | None = None,
        account_id: str | None = None,
        cloudflare_queues_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cloudflare_queue = cloudflare_queue
        self.account_id = account_id
        self.cloudflare_queues_conn_id = cloudflare_queues_conn_id

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        """Check the arguments as written on the task, before Airflow merges ``default_args`` into them (a
        mapped task's were checked by ``.expand()``)."""
        if not kwargs.get("_airflow_from_mapped"):
            check_arguments(cls, kwargs.get("task_id"), kwargs)
        return super().__new__(cls)

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """Airflow's ``.partial()``, whose ``.expand()`` refuses arguments that mean something else here."""
        if error := foreign_names_error(cls.__name__, [name for name in kwargs if name not in _own_arguments(cls)]):
            raise TypeError(error)
        made = super().partial(**kwargs)
        checked = _CheckedPartial(operator_class=made.operator_class, kwargs=made.kwargs, params=made.params)
        checked.given = kwargs
        made._expand_called = True  # replaced by ``checked``: no "never mapped" warning for it
        return checked

    #: the hook of the current task execution (see :attr:`hook`)
    _task_hook: CloudflareQueuesHook | None = None

    @property
    def hook(self) -> CloudflareQueuesHook:
        """
        The hook of this task execution, for the operator's connection and account: made on first use
        (after the templates are rendered), reused by every call and poke of the execution, and its
        connections closed when ``execute`` ends (:func:`closes_hook`).
        """
        if self._task_hook is None:
            self._task_hook = CloudflareQueuesHook(self.cloudflare_queues_conn_id, account_id=self.account_id or None)
        return self._task_hook

    def close_hook(self) -> None:
        """Close the connections of this execution's hook (its settings stay, for OpenLineage)."""
        if self._task_hook is not None:
            self._task_hook.close()

    @property
    def queue_ref(self) -> str:
        """
        The Cloudflare queue this task acts on: ``cloudflare_queue`` as rendered, or, when it was not
        given (and the operator is not destructive), the connection's ``queue`` extra. An argument that
        rendered empty is an error, never a fall-back to another queue.
        """
        queue = self.cloudflare_queue
        if queue is None and not self._needs_named_queue:
            queue = self.hook.settings.queue
            if not queue:
                raise CloudflareQueuesConfigError(
                    f"no Cloudflare queue given to task {self.task_id!r}: pass cloudflare_queue=<id or name>, or "
                    f"set the 'queue' extra of connection {self.cloudflare_queues_conn_id!r}. (queue= is "
                    f"Airflow's executor queue, the Celery or Kubernetes queue this task runs on: "
                    f"{self.queue!r} here)"
                )
            return queue
        if not isinstance(queue, str) or not queue.strip():
            why = (
                "acts on the queue it is given, never on the connection's default queue"
                if self._needs_named_queue
                else "rendered empty"
            )
            raise CloudflareQueuesValidationError(
                f"{type(self).__name__} {why}: cloudflare_queue is {queue!r}; name the queue (id or name). "
                f"(queue= is Airflow's executor queue: {self.queue!r} here)"
            )
        return queue

    def _when_paused(self, error: CloudflareQueuesDeliveryPausedError, on_paused: str, done: str) -> None:
        """A pull found the queue's delivery paused: skip or fail the task, or log and carry on."""
        queue = self.queue_ref
        message = (
            f"Delivery of queue {queue} is paused ({done}); resume it to pull: `npx wrangler queues "
            f"resume-delivery {queue}`, or CloudflareQueuesResumeDeliveryOperator"
        )
        if on_paused == "skip":
            raise AirflowSkipException(message)
        if on_paused == "fail":
            raise AirflowException(message) from error
        self.log.warning("%s; the task succeeds (on_paused='succeed')", message)

    def _lineage(self, *, reads: bool) -> Any:
        """The queue as an OpenLineage dataset (input when ``reads``), or ``None`` without the provider."""
        try:
            from airflow.providers.common.compat.openlineage.facet import Dataset
            from airflow.providers.openlineage.extractors import OperatorLineage
        except ImportError:
            return None
        try:
            settings = self.hook.settings
            queue = self.queue_ref
        except CloudflareQueuesError as err:
            self.log.warning("No OpenLineage dataset for this task: %s", err)
            return None
        dataset = Dataset(namespace=f"cloudflare-queues://{settings.account_id}", name=queue)
        return OperatorLineage(inputs=[dataset]) if reads else OperatorLineage(outputs=[dataset])
