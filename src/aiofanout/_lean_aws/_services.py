"""The hot calls of Lambda and SQS on the lean client, with the arguments and answers of botocore.

``LeanLambda.invoke`` and ``LeanSqs``'s sends, receives and deletes take the keyword arguments of
the aiobotocore client methods of the same names and return what they return (the fields the
targets read, ``ResponseMetadata`` included), so a target, a reply queue or the worker's reply
sender holds either client the same way. Any other method goes to the aioboto3 client given as
``fallback`` (a reply queue's ``create_queue`` and ``delete_queue``): once per fan-out, not per
item.
"""

from __future__ import annotations

import base64
import functools
import json
import urllib.parse
from typing import Any

from ._client import LeanClient, metadata

__all__ = ["LeanLambda", "LeanSqs"]

SQS_JSON = "application/x-amz-json-1.0"


class _Payload:
    """The already-read body of an invoke, read as botocore's ``StreamingBody`` is."""

    __slots__ = ("_body",)

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def read(self) -> bytes:
        return self._body


class _LeanService:
    """A lean client of one service, and the aioboto3 client for everything else, if any."""

    def __init__(self, client: LeanClient, *, fallback: Any = None) -> None:
        self.lean = client
        self._fallback = fallback
        self.meta = _Meta(client)

    def __getattr__(self, name: str) -> Any:
        fallback = self.__dict__.get("_fallback")
        if fallback is None or name.startswith("_"):
            raise AttributeError(f"the lean {type(self).__name__} client has no {name!r}")
        return getattr(fallback, name)

    async def close(self) -> None:
        """Close the lean client's pool and the fallback client."""
        try:
            await self.lean.close()
        finally:
            if self._fallback is not None:
                await self._fallback.close()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class _Meta:
    """What a botocore client's ``meta`` tells about it and the targets read."""

    def __init__(self, client: LeanClient) -> None:
        self.endpoint_url = client.endpoint.url
        self.region_name = client.endpoint.region
        self.config = client.config


class LeanLambda(_LeanService):
    """Lambda's ``Invoke`` on the lean path (``RequestResponse``, ``Event``, ``DryRun``)."""

    async def invoke(
        self,
        *,
        FunctionName: str,  # noqa: N803 - botocore's argument names
        Payload: bytes | Any = b"",  # noqa: N803
        InvocationType: str = "RequestResponse",  # noqa: N803
        Qualifier: str | None = None,  # noqa: N803
        LogType: str | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        """Invoke the function; botocore's answer (``StatusCode``, ``FunctionError``, ...)."""
        body = Payload if isinstance(Payload, bytes) else Payload.read()
        path = _invoke_path(FunctionName, Qualifier)
        headers = {"x-amz-invocation-type": InvocationType}
        if LogType:
            headers["x-amz-log-type"] = LogType
        status, answer_headers, answer = await self.lean.call("Invoke", "POST", path, headers, body)
        response: dict[str, Any] = {
            "StatusCode": status,
            "Payload": _Payload(answer),
            "ResponseMetadata": metadata(status, answer_headers),
        }
        for header, field in _INVOKE_HEADERS:
            if header in answer_headers:
                response[field] = answer_headers[header]
        return response


@functools.lru_cache(maxsize=256)
def _invoke_path(function_name: str, qualifier: str | None) -> str:
    """The Invoke path of a function (a name, a partial or whole ARN: its colons encoded)."""
    path = f"/2015-03-31/functions/{urllib.parse.quote(function_name, safe='')}/invocations"
    if qualifier:
        path += f"?Qualifier={urllib.parse.quote(qualifier, safe='')}"
    return path


_INVOKE_HEADERS = (
    ("x-amz-function-error", "FunctionError"),
    ("x-amz-log-result", "LogResult"),
    ("x-amz-executed-version", "ExecutedVersion"),
)


class LeanSqs(_LeanService):
    """SQS's sends, receives and deletes on the lean path, in its JSON protocol."""

    async def send_message_batch(self, **params: Any) -> dict[str, Any]:
        """``SendMessageBatch`` (``QueueUrl``, ``Entries``): ``Successful`` and ``Failed``."""
        return await self._call("SendMessageBatch", params)

    async def send_message(self, **params: Any) -> dict[str, Any]:
        """``SendMessage`` (``QueueUrl``, ``MessageBody``, ...)."""
        return await self._call("SendMessage", params)

    async def receive_message(self, **params: Any) -> dict[str, Any]:
        """``ReceiveMessage`` (``QueueUrl``, ``MaxNumberOfMessages``, ``WaitTimeSeconds``, ...)."""
        response = await self._call("ReceiveMessage", params)
        for message in response.get("Messages", []):
            for attribute in message.get("MessageAttributes", {}).values():
                if "BinaryValue" in attribute:  # base64 in the JSON; bytes, as botocore gives
                    attribute["BinaryValue"] = base64.b64decode(attribute["BinaryValue"])
        return response

    async def delete_message_batch(self, **params: Any) -> dict[str, Any]:
        """``DeleteMessageBatch`` (``QueueUrl``, ``Entries``): ``Successful`` and ``Failed``."""
        return await self._call("DeleteMessageBatch", params)

    async def _call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        headers = {
            "content-type": SQS_JSON,
            "x-amz-target": f"AmazonSQS.{operation}",
            "x-amzn-query-mode": "true",  # SQS answers with its query-protocol error codes
        }
        body = json.dumps(params, separators=(",", ":"), default=_blob).encode()
        status, answer_headers, answer = await self.lean.call(operation, "POST", "/", headers, body)
        response: dict[str, Any] = json.loads(answer) if answer else {}
        response["ResponseMetadata"] = metadata(status, answer_headers)
        return response


def _blob(value: object) -> str:
    """A blob as SQS's JSON protocol takes it: base64 text, as botocore's serializer writes it.

    (A ``Binary`` message attribute's ``BinaryValue`` is the blob the targets send.)
    """
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
