"""The runtime's one aiohttp application and its one route table: every path it serves.

One application serves the Invoke API, the control plane and, on each environment's own port,
the Runtime API. :func:`routes` lists every route, in the order they are matched; the paths are
botocore's (``lambda`` 2015-03-31 service model) and the Runtime API's. Each API gets the
collaborators it needs from :func:`application`, not the whole runtime. A path no route serves
is answered by :func:`unsupported_operation`, last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from ._concurrency_api import ConcurrencyApi
from ._event_configs_api import EventConfigsApi
from ._functions_api import FunctionsApi
from ._http import Handler, aws_errors, loopback_only, unsupported_operation
from ._invoke_api import InvokeApi
from ._mappings_api import MappingsApi

if TYPE_CHECKING:
    from ..._limits import PayloadLimits
    from .._code import CodeStore
    from .._event_sources import Mappings
    from .._functions import Control, FunctionRegistry
    from .._sandbox import Invoke, RuntimeApi

#: Bodies up to this size are read: a 6 MB function response, a 50 MB zip base64-encoded.
MAX_BODY = 70 * 1024 * 1024
FUNCTIONS = "/2015-03-31/functions"
FUNCTION = FUNCTIONS + "/{name}"
CONCURRENCY = "/functions/{name}/concurrency"  # after the version: Put 2017-10-31, Get 2019-09-30
PROVISIONED = "/2019-09-30/functions/{name}/provisioned-concurrency"
EVENT_INVOKE_CONFIG = "/2019-09-25/functions/{name}/event-invoke-config"
MAPPINGS = "/2015-03-31/event-source-mappings"
#: Every Runtime API path starts with the environment's secret (see ``_sandbox._runtime_api``).
RUNTIME = "/{secret}/2018-06-01/runtime"


@dataclass(frozen=True, slots=True)
class Apis:
    """The handlers of every API the application serves."""

    invoke: InvokeApi
    runtime: RuntimeApi
    functions: FunctionsApi
    concurrency: ConcurrencyApi
    event_configs: EventConfigsApi
    mappings: MappingsApi


def routes(apis: Apis) -> list[tuple[str, str, Handler]]:
    """Every route as (method, path, handler), matched in this order; a GET also answers HEAD."""
    fn, co, ev = apis.functions, apis.concurrency, apis.event_configs
    es, rt = apis.mappings, apis.runtime
    return [
        ("POST", FUNCTION + "/invocations", apis.invoke.invoke),
        ("GET", RUNTIME + "/invocation/next", rt.next_invocation),
        ("POST", RUNTIME + "/invocation/{request_id}/response", rt.invocation_response),
        ("POST", RUNTIME + "/invocation/{request_id}/error", rt.invocation_error),
        ("POST", RUNTIME + "/init/error", rt.init_error),
        ("POST", FUNCTIONS, fn.create_function),
        ("GET", FUNCTIONS, fn.list_functions),
        ("GET", FUNCTIONS + "/", fn.list_functions),
        ("GET", FUNCTION, fn.get_function),
        ("DELETE", FUNCTION, fn.delete_function),
        ("GET", FUNCTION + "/configuration", fn.get_function_configuration),
        ("PUT", FUNCTION + "/configuration", fn.update_function_configuration),
        ("PUT", FUNCTION + "/code", fn.update_function_code),
        ("PUT", "/2017-10-31" + CONCURRENCY, co.put_function_concurrency),
        ("GET", "/2019-09-30" + CONCURRENCY, co.get_function_concurrency),
        ("DELETE", "/2017-10-31" + CONCURRENCY, co.delete_function_concurrency),
        ("PUT", PROVISIONED, co.put_provisioned_concurrency_config),
        ("GET", PROVISIONED, co.get_provisioned_concurrency_config),
        ("DELETE", PROVISIONED, co.delete_provisioned_concurrency_config),
        ("PUT", EVENT_INVOKE_CONFIG, ev.put_function_event_invoke_config),
        ("POST", EVENT_INVOKE_CONFIG, ev.update_function_event_invoke_config),
        ("GET", EVENT_INVOKE_CONFIG, ev.get_function_event_invoke_config),
        ("DELETE", EVENT_INVOKE_CONFIG, ev.delete_function_event_invoke_config),
        ("GET", EVENT_INVOKE_CONFIG + "/list", ev.list_function_event_invoke_configs),
        ("POST", MAPPINGS, es.create_event_source_mapping),
        ("POST", MAPPINGS + "/", es.create_event_source_mapping),
        ("GET", MAPPINGS, es.list_event_source_mappings),
        ("GET", MAPPINGS + "/", es.list_event_source_mappings),
        ("GET", MAPPINGS + "/{uuid}", es.get_event_source_mapping),
        ("PUT", MAPPINGS + "/{uuid}", es.update_event_source_mapping),
        ("DELETE", MAPPINGS + "/{uuid}", es.delete_event_source_mapping),
        ("*", "/{tail:.*}", unsupported_operation),  # last: what is left
    ]


def application(
    *,
    functions: FunctionRegistry,
    control: Control,
    code: CodeStore,
    mappings: Mappings,
    limits: PayloadLimits,
    invoke: Invoke,
    log_tail: Callable[[str], bytes],
    runtime_api: RuntimeApi,
) -> web.Application:
    """The application: AWS's errors and the loopback guard around every route of the table."""
    app = web.Application(middlewares=[loopback_only, aws_errors], client_max_size=MAX_BODY)
    apis = Apis(
        invoke=InvokeApi(functions, limits, invoke, log_tail),
        runtime=runtime_api,
        functions=FunctionsApi(functions, control, code, mappings),
        concurrency=ConcurrencyApi(functions, control),
        event_configs=EventConfigsApi(functions),
        mappings=MappingsApi(functions, mappings),
    )
    for method, path, handler in routes(apis):
        if method == "GET":
            app.router.add_get(path, handler)  # and HEAD, as aiohttp's add_get always did here
        else:
            app.router.add_route(method, path, handler)
    return app
