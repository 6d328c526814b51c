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

from ._account_api import AccountApi
from ._concurrency_api import ConcurrencyApi
from ._event_configs_api import EventConfigsApi
from ._functions_api import CODE_DOWNLOAD, FunctionsApi
from ._http import Handler, aws_errors, loopback_only, unsupported_operation
from ._invoke_api import InvokeApi
from ._mappings_api import MappingsApi
from ._validation import validated

if TYPE_CHECKING:
    from ..._limits import PayloadLimits
    from .._code import CodeStore
    from .._config import AccountLimits
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
ACCOUNT_SETTINGS = "/2016-08-19/account-settings"
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
    account: AccountApi


def routes(apis: Apis) -> list[tuple[str, str, Handler]]:
    """Every route as (method, path, handler), matched in this order; a GET also answers HEAD.

    Each Lambda operation's handler is :func:`validated` first, as AWS checks a request against
    the model before it looks anything up.
    """
    rt = apis.runtime
    return [
        ("GET", RUNTIME + "/invocation/next", rt.next_invocation),
        ("POST", RUNTIME + "/invocation/{request_id}/response", rt.invocation_response),
        ("POST", RUNTIME + "/invocation/{request_id}/error", rt.invocation_error),
        ("POST", RUNTIME + "/init/error", rt.init_error),
        ("GET", CODE_DOWNLOAD, apis.functions.download_code),
        *[
            (method, path, validated(name, handler))
            for method, path, name, handler in operations(apis)
        ],
        ("*", "/{tail:.*}", unsupported_operation),  # last: what is left
    ]


def operations(apis: Apis) -> list[tuple[str, str, str, Handler]]:
    """The Lambda operations served: (method, path, operation name in the model, handler)."""
    fn, co, ev = apis.functions, apis.concurrency, apis.event_configs
    es, ac = apis.mappings, apis.account
    return [
        ("POST", FUNCTION + "/invocations", "Invoke", apis.invoke.invoke),
        ("POST", FUNCTIONS, "CreateFunction", fn.create_function),
        ("GET", FUNCTIONS, "ListFunctions", fn.list_functions),
        ("GET", FUNCTIONS + "/", "ListFunctions", fn.list_functions),
        ("GET", FUNCTION, "GetFunction", fn.get_function),
        ("DELETE", FUNCTION, "DeleteFunction", fn.delete_function),
        ("GET", FUNCTION + "/configuration", "GetFunctionConfiguration", fn.get_configuration),
        ("PUT", FUNCTION + "/configuration", "UpdateFunctionConfiguration", fn.update_config),
        ("PUT", FUNCTION + "/code", "UpdateFunctionCode", fn.update_function_code),
        ("PUT", "/2017-10-31" + CONCURRENCY, "PutFunctionConcurrency", co.put_reserved),
        ("GET", "/2019-09-30" + CONCURRENCY, "GetFunctionConcurrency", co.get_reserved),
        ("DELETE", "/2017-10-31" + CONCURRENCY, "DeleteFunctionConcurrency", co.delete_reserved),
        ("PUT", PROVISIONED, "PutProvisionedConcurrencyConfig", co.put_provisioned),
        ("GET", PROVISIONED, "GetProvisionedConcurrencyConfig", co.get_provisioned),
        ("DELETE", PROVISIONED, "DeleteProvisionedConcurrencyConfig", co.delete_provisioned),
        ("PUT", EVENT_INVOKE_CONFIG, "PutFunctionEventInvokeConfig", ev.put_config),
        ("POST", EVENT_INVOKE_CONFIG, "UpdateFunctionEventInvokeConfig", ev.update_config),
        ("GET", EVENT_INVOKE_CONFIG, "GetFunctionEventInvokeConfig", ev.get_config),
        ("DELETE", EVENT_INVOKE_CONFIG, "DeleteFunctionEventInvokeConfig", ev.delete_config),
        ("GET", EVENT_INVOKE_CONFIG + "/list", "ListFunctionEventInvokeConfigs", ev.list_configs),
        ("POST", MAPPINGS, "CreateEventSourceMapping", es.create_mapping),
        ("POST", MAPPINGS + "/", "CreateEventSourceMapping", es.create_mapping),
        ("GET", MAPPINGS, "ListEventSourceMappings", es.list_mappings),
        ("GET", MAPPINGS + "/", "ListEventSourceMappings", es.list_mappings),
        ("GET", MAPPINGS + "/{uuid}", "GetEventSourceMapping", es.get_mapping),
        ("PUT", MAPPINGS + "/{uuid}", "UpdateEventSourceMapping", es.update_mapping),
        ("DELETE", MAPPINGS + "/{uuid}", "DeleteEventSourceMapping", es.delete_mapping),
        ("GET", ACCOUNT_SETTINGS, "GetAccountSettings", ac.get_account_settings),
    ]


def application(
    *,
    functions: FunctionRegistry,
    control: Control,
    code: CodeStore,
    mappings: Mappings,
    limits: PayloadLimits,
    account: AccountLimits,
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
        concurrency=ConcurrencyApi(functions, control, account),
        event_configs=EventConfigsApi(functions),
        mappings=MappingsApi(functions, mappings),
        account=AccountApi(functions, account),
    )
    for method, path, handler in routes(apis):
        if method == "GET":
            app.router.add_get(path, handler)  # and HEAD, as aiohttp's add_get always did here
        else:
            app.router.add_route(method, path, handler)
    return app
