"""``GetAccountSettings``: the local account's limits and what its functions use of them.

From botocore's service model for ``lambda``: ``GET /2016-08-19/account-settings`` answers
``AccountLimit`` (``TotalCodeSize``, ``CodeSizeUnzipped``, ``CodeSizeZipped``,
``ConcurrentExecutions``, ``UnreservedConcurrentExecutions``) and ``AccountUsage``
(``TotalCodeSize``, ``FunctionCount``). The concurrency is :class:`AccountLimits`' (the
runtime cannot know a real account's quota); the code sizes are AWS's fixed limits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .._code import UNZIPPED_LIMIT, ZIPPED_LIMIT
from .._functions import unreserved
from ._http import reply

if TYPE_CHECKING:
    from .._config import AccountLimits
    from .._functions import FunctionRegistry

#: AWS's limit on the code of all functions and layers of an account (75 GB).
TOTAL_CODE_SIZE = 80_530_636_800


class AccountApi:
    """``GetAccountSettings`` over a runtime's functions and its account's limits."""

    def __init__(self, functions: FunctionRegistry, account: AccountLimits) -> None:
        self._functions = functions
        self._account = account

    async def get_account_settings(self, request: web.Request) -> web.Response:
        functions = self._functions.all()
        return reply(
            {
                "AccountLimit": {
                    "TotalCodeSize": TOTAL_CODE_SIZE,
                    "CodeSizeUnzipped": UNZIPPED_LIMIT,
                    "CodeSizeZipped": ZIPPED_LIMIT,
                    "ConcurrentExecutions": self._account.concurrency,
                    "UnreservedConcurrentExecutions": unreserved(self._functions, self._account),
                },
                "AccountUsage": {
                    "TotalCodeSize": sum(f.deployment.code_size for f in functions),
                    "FunctionCount": len(functions),
                },
            }
        )
