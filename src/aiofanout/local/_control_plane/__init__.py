"""The control plane: the Lambda API over HTTP, in front of the runtime's functions and mappings.

- ``_routes``: the one application and its one route table (every path served, in order);
- ``_validation``: AWS's request validation, driven by botocore's service model, run on every
  operation's request before it looks anything up (400 ``ValidationException``);
- ``_http``: what every route shares: AWS's JSON errors, the loopback guard, bodies, the
  function lookup and its not-found answers, paging, the unknown-operation answer;
- ``_invoke_api``: ``Invoke`` (``RequestResponse``, ``Event``, ``DryRun``, ``LogType: Tail``);
- ``_functions_api``: ``CreateFunction`` ... ``DeleteFunction``;
- ``_concurrency_api``: reserved and provisioned concurrency;
- ``_event_configs_api``: ``*FunctionEventInvokeConfig``;
- ``_mappings_api``: ``*EventSourceMapping``;
- ``_account_api``: ``GetAccountSettings`` (the account's limits, :class:`AccountLimits`).

Only this layer speaks HTTP: the domain below raises :class:`~aiofanout.UsageError` or its own
errors (``CodeError``), and each API turns them into AWS's answers.
"""

from ._routes import application

__all__ = ["application"]
