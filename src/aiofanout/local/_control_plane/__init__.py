"""The control plane: the Lambda API over HTTP, in front of the runtime's functions and mappings.

- ``_routes``: the one application and its one route table (every path served, in order);
- ``_http``: what every route shares: AWS's JSON errors, the loopback guard, bodies, the
  function lookup, paging, the unknown-operation answer;
- ``_invoke_api``: ``Invoke`` (``RequestResponse``, ``Event``, ``DryRun``, ``LogType: Tail``);
- ``_functions_api``: ``CreateFunction`` ... ``DeleteFunction``;
- ``_concurrency_api``: reserved and provisioned concurrency;
- ``_event_configs_api``: ``*FunctionEventInvokeConfig``;
- ``_mappings_api``: ``*EventSourceMapping``.

Only this layer speaks HTTP: the domain below raises :class:`~aiofanout.UsageError` or its own
errors (``CodeError``), and each API turns them into AWS's answers.
"""

from ._routes import application

__all__ = ["application"]
