"""What an execution environment runs: awslambdaric, talking to its Runtime API with its secret.

Run by path (``python _runtime_bootstrap.py <handler>``), never imported: it imports only the
standard library and awslambdaric, which is all an environment's Python needs, and never this
package (an isolated environment, started with ``-S``, could not import it). Without ``site`` it
puts back the builtins ``site`` would have added (``exit``, ``help``, ...), which a function
has on AWS, and nothing of what ``site`` puts on the path.

Each environment's Runtime API serves only requests whose path starts with the environment's
own secret, so no other local process can take its invocations or answer them. The secret
arrives on stdin, not in a variable (``/proc/<pid>/environ`` is readable by every process of the
same user): the native client reads ``AWS_LAMBDA_RUNTIME_API`` once, when it is imported, and
takes ``host:port/secret`` as its URL's start; ``http.client`` (awslambdaric's init-error path)
takes ``host:port`` only, so that path gets the secret in front of its endpoint instead. The
function then sees ``AWS_LAMBDA_RUNTIME_API`` as AWS sets it, ``host:port``.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def main() -> None:
    if sys.flags.no_site:  # an isolated environment: the builtins only, no site-packages
        import site

        site.setquit()
        site.setcopyright()
        site.sethelper()
    address = os.environ["AWS_LAMBDA_RUNTIME_API"]
    secret = sys.stdin.readline().strip()
    os.environ["AWS_LAMBDA_RUNTIME_API"] = f"{address}/{secret}"
    from awslambdaric import lambda_runtime_client  # the native client reads the address now

    os.environ["AWS_LAMBDA_RUNTIME_API"] = address
    client = lambda_runtime_client.BaseLambdaRuntimeClient
    call_rapid = client.call_rapid

    def call_with_secret(self: Any, method: str, endpoint: str, *args: Any, **kwargs: Any) -> Any:
        return call_rapid(self, method, f"/{secret}{endpoint}", *args, **kwargs)

    client.call_rapid = call_with_secret
    from awslambdaric.__main__ import main as run

    run(sys.argv)


if __name__ == "__main__":
    main()
