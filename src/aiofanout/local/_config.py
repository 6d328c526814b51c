"""What a local function is and what feeds it: its config and its SQS event source mappings.

Plain frozen values (standard library and the core only): they load without the ``local`` extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .._errors import UsageError
from ._faults import Faults


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    """A function of the local Lambda runtime.

    Attributes:
        name: the function name clients invoke.
        handler: ``module.attr`` or ``module:attr``, e.g. ``"worker.lambda_handler"``.
        timeout: seconds before an invocation is stopped ("Task timed out after N seconds").
        memory: MB, informational (``context.memory_limit_in_mb``).
        environment: variables set in every execution environment.
        reserved_concurrency: the most environments at once; more invokes get 429.
        throttle_after: seconds a synchronous invoke may wait for a busy environment before it
            gets 429 (0, the default, is AWS's behaviour; more makes a local burst buffer). For
            a function without a reservation, the wait for a slot of the account's unreserved
            concurrency counts in the same seconds.
        code_paths: folders put on ``PYTHONPATH`` of the environments (where ``handler`` lives).
        faults: injected throttles, errors, crashes, hangs and latency.
        event_retries: retries of a failed ``Event`` invocation (0-2, as on AWS).
        event_retry_delays: seconds before each of those retries (AWS waits minutes).
        on_failure: an SQS queue URL that receives ``Event`` invocations that failed every try.
        isolated: run as AWS runs a deployed zip. ``True``: the environments' ``sys.path`` is
            ``code_paths`` and what the Lambda Python runtime provides (awslambdaric, boto3 and
            botocore with their dependencies), their working directory the first code path; a
            dependency the code lacks fails with ``Runtime.ImportModuleError``, as on AWS.
            ``False`` (the default, the development mode): ``code_paths`` in front of the calling
            process's own packages, so a source directory runs with what your virtualenv has.
            Code from a zip (``CreateFunction``, ``UpdateFunctionCode``) is always isolated.

    Example::

        FunctionConfig("worker", "worker.lambda_handler", timeout=10, reserved_concurrency=4,
                       code_paths=["examples"], faults=Faults(throttle=0.1))
        FunctionConfig("worker", "worker.lambda_handler", code_paths=["build/worker"],
                       isolated=True)  # as deployed: only the code and the runtime's own

    """

    name: str
    handler: str
    timeout: float = 3.0
    memory: int = 128
    environment: dict[str, str] = field(default_factory=dict)
    reserved_concurrency: int = 10
    throttle_after: float = 0.0
    code_paths: Sequence[str] = ()
    faults: Faults = field(default_factory=Faults)
    event_retries: int = 2
    event_retry_delays: Sequence[float] = (60.0, 120.0)
    on_failure: str | None = None
    isolated: bool = False

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise UsageError(f"a function name must be non-empty without '/', got {self.name!r}")
        module, _, attr = self.handler.replace(":", ".").rpartition(".")
        if not module or not attr:
            raise UsageError(
                f"handler must be 'module.attr' or 'module:attr', got {self.handler!r}"
            )
        if not 0 < self.timeout <= 900:
            raise UsageError(f"timeout must be within (0, 900] seconds, got {self.timeout!r}")
        if self.isolated and not self.code_paths:
            raise UsageError("an isolated function runs only its code: give it code_paths")
        if self.reserved_concurrency < 1:
            raise UsageError("reserved_concurrency must be >= 1")
        if "AWS_LAMBDA_MAX_CONCURRENCY" in self.environment:
            raise UsageError(
                "AWS_LAMBDA_MAX_CONCURRENCY makes awslambdaric fork extra pollers in one "
                "environment; set reserved_concurrency for more environments instead"
            )
        if not 0 <= self.event_retries <= 2:
            raise UsageError(f"event_retries is 0, 1 or 2 (as on AWS), got {self.event_retries}")

    @property
    def runtime_handler(self) -> str:
        """The handler as awslambdaric takes it: ``module.attr``."""
        return self.handler.replace(":", ".")

    def retry_delay(self, retry_number: int) -> float:
        """Seconds before ``Event`` retry number ``retry_number`` (1-based)."""
        delays = list(self.event_retry_delays) or [0.0]
        return float(delays[min(retry_number, len(delays)) - 1])


@dataclass(frozen=True, slots=True)
class EventSourceMapping:
    """Poll an SQS queue and invoke a function with batches of its messages.

    Attributes:
        queue_url: the queue (on the moto server).
        function: the local function to invoke.
        batch_size: the most records per invocation (1-10, or up to 10,000 with a
            ``batching_window`` of at least 1 s, as on AWS).
        batching_window: seconds to gather a fuller batch before invoking.
        report_batch_item_failures: honour ``batchItemFailures`` (delete only what succeeded);
            without it a function error leaves the whole batch to come back.
        pollers: concurrent pollers (each holds at most one batch in flight).

    Example::

        await aws.add_event_source(EventSourceMapping(queue_url, "worker", batch_size=10))

    """

    queue_url: str
    function: str
    batch_size: int = 10
    batching_window: float = 0.0
    report_batch_item_failures: bool = True
    pollers: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 10_000:
            raise UsageError(f"batch_size is 1..10000 for a standard queue, got {self.batch_size}")
        if self.batch_size > 10 and self.batching_window < 1:
            raise UsageError("a batch_size over 10 needs a batching_window of at least 1 s")
        if self.pollers < 1:
            raise UsageError("pollers must be >= 1")


@dataclass(frozen=True, slots=True)
class AccountLimits:
    """The local account's Lambda limits, as ``GetAccountSettings`` reports them.

    The local runtime cannot know a real account's quotas, so they are set here (``serve
    --account-concurrency``). ``PutFunctionConcurrency`` refuses a reservation that would leave
    less than ``minimum_unreserved`` (or all of ``concurrency``, if that is smaller: then nothing
    can be reserved, as on a new AWS account of 10) for the functions that reserve none. Those
    share what is left at invoke time: past it a synchronous invoke is 429
    ``ConcurrentInvocationLimitExceeded``, as on AWS.

    Attributes:
        concurrency: the account's concurrent executions (AWS's default quota: 1,000).
        minimum_unreserved: what reservations must leave unreserved (AWS: 100).

    Example::

        async with stack(account=AccountLimits(concurrency=50, minimum_unreserved=10)) as aws:
            ...

    """

    concurrency: int = 1000
    minimum_unreserved: int = 100

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise UsageError(f"the account's concurrency must be >= 1, got {self.concurrency}")
        if self.minimum_unreserved < 0:
            raise UsageError(f"minimum_unreserved must be >= 0, got {self.minimum_unreserved}")

    @property
    def least_unreserved(self) -> int:
        """What reservations must leave unreserved, in an account of this size."""
        return min(self.minimum_unreserved, self.concurrency)
