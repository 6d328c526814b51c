"""Every control-plane route of the local Lambda API, added to the runtime's application."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._concurrency_api import ConcurrencyApi
from ._event_configs import EventConfigsApi
from ._functions_api import FunctionsApi
from ._mappings_api import MappingsApi

if TYPE_CHECKING:
    from aiohttp import web

    from ._runtime import LocalLambda


def add_control_routes(runtime: LocalLambda, app: web.Application) -> None:
    """Serve functions, concurrency, event invoke configs and event source mappings."""
    FunctionsApi(runtime).add_routes(app)
    ConcurrencyApi(runtime).add_routes(app)
    EventConfigsApi(runtime.functions).add_routes(app)
    MappingsApi(runtime.functions, runtime.mappings).add_routes(app)
