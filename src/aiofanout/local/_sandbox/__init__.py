"""The sandbox: execution environments, their pools, invocations and the Runtime API they poll.

- ``_pool``: one function's environments: warm ones, waiting invokes, the reserved concurrency;
- ``_unreserved``: the account's unreserved concurrency, shared by functions that reserve none;
- ``_environments``: the awslambdaric processes, started, watched, killed, their logs relayed;
- ``_invocation``: one invocation on its way, how it ended, the signature of ``invoke``;
- ``_report_line``: the ``REPORT`` line of an invocation's log (durations, memory), measured;
- ``_runtime_api``: the Lambda Runtime API each environment polls, where injected crashes and
  hangs strike;
- ``_provided``: what the Lambda Python runtime provides an isolated environment (awslambdaric,
  boto3, botocore and what they need), one directory of links per runtime;
- ``_runtime_bootstrap.py``: the script an environment runs (by path, never imported here).

Nothing here knows a function beyond the config an environment was started with: the pool that
keeps an environment hears of its start and end through callbacks.
"""

from ._environments import Environment, Environments
from ._invocation import ACCOUNT_LIMIT, CONCURRENCY_LIMIT, Invocation, Invoke, Result, Throttle
from ._pool import Pool
from ._report_line import Report
from ._runtime_api import RuntimeApi
from ._unreserved import UnreservedPool

__all__ = [
    "ACCOUNT_LIMIT",
    "CONCURRENCY_LIMIT",
    "Environment",
    "Environments",
    "Invocation",
    "Invoke",
    "Pool",
    "Report",
    "Result",
    "RuntimeApi",
    "Throttle",
    "UnreservedPool",
]
