"""Bad input to the local Lambda gets AWS's 4xx in AWS's JSON shape, never a 500 or a leftover.

Requests go over real HTTP as raw bodies (boto3 would refuse most of them client-side, a
script or a browser would not). Limits and patterns are AWS's: function names
``[a-zA-Z0-9-_]{1,64}``, ``Timeout`` 1-900, ``MemorySize`` 128-10240, a 50 MB zip uploaded
directly, 250 MB unzipped.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import uuid
import zipfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aiofanout.local import LocalAws

# End to end on a local stack of real processes: every test here is slow.
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

ROLE = "arn:aws:iam::123456789012:role/r"


def zip_of(members: dict[str, bytes]) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return base64.b64encode(buffer.getvalue()).decode()


def creation(**fields: Any) -> dict[str, Any]:
    body = {
        "FunctionName": f"fn-{uuid.uuid4().hex[:8]}",
        "Runtime": "python3.11",
        "Handler": "app.handler",
        "Role": ROLE,
        "Code": {"ZipFile": zip_of({"app.py": b"def handler(e, c):\n    return e\n"})},
    }
    return {**body, **fields}


async def send(
    aws: LocalAws, method: str, path: str, body: str | bytes | None = None
) -> tuple[int, dict[str, Any], str]:
    """(status, JSON body, x-amzn-ErrorType) of one raw request to the local Lambda."""
    headers = {"Content-Type": "application/json"}
    data = io.BytesIO(body.encode() if isinstance(body, str) else body) if body else None
    async with aiohttp.ClientSession() as http:
        url = f"{aws.lambda_endpoint_url}{path}"
        async with http.request(method, url, data=data, headers=headers) as response:
            answer = await response.json(content_type=None)
            return response.status, answer, response.headers.get("x-amzn-ErrorType", "")


async def create(aws: LocalAws, body: dict[str, Any] | str) -> tuple[int, dict[str, Any], str]:
    raw = body if isinstance(body, str) else json.dumps(body)
    return await send(aws, "POST", "/2015-03-31/functions", raw)


async def absent(aws: LocalAws, name: str) -> bool:
    status, _, _ = await send(aws, "GET", f"/2015-03-31/functions/{name}")
    return status == 404


@pytest.mark.parametrize(
    ("fields", "code", "says"),
    [
        ({"Timeout": "abc"}, "InvalidParameterValueException", "'timeout' must be an integer"),
        ({"Timeout": 0}, "ValidationException", "greater than or equal to 1"),
        ({"Timeout": 901}, "ValidationException", "less than or equal to 900"),
        ({"MemorySize": 64}, "ValidationException", "greater than or equal to 128"),
        ({"Environment": [1]}, "InvalidParameterValueException", "Environment must be an object"),
        (
            {"Environment": {"Variables": {"AB": 1}}},
            "InvalidParameterValueException",
            "environment variable 'AB'",
        ),
    ],
    ids=["timeout-text", "timeout-0", "timeout-901", "memory-64", "environment-list", "var-int"],
)
async def test_a_bad_setting_is_a_400_naming_it_and_creates_nothing(
    aws: LocalAws, fields: dict[str, Any], code: str, says: str
) -> None:
    body = creation(**fields)
    status, answer, error_type = await create(aws, body)
    assert (status, error_type) == (400, code)
    assert says in answer["message"]
    assert await absent(aws, body["FunctionName"])


async def test_a_memory_size_past_any_float_is_a_400(aws: LocalAws) -> None:
    raw = json.dumps(creation()).replace('"Runtime"', '"MemorySize": 1e400, "Runtime"')
    status, _, error_type = await create(aws, raw)
    assert (status, error_type) == (400, "InvalidParameterValueException")


@pytest.mark.parametrize(
    "name",
    ["..", "a\nINFO forged log line", "x" * 5000, "$LATEST", "a:b", ""],
    ids=["dots", "newline", "5000-chars", "latest", "colon", "empty"],
)  # 65 characters: AWS's own answer (test_lambda_fidelity.py)
async def test_a_name_aws_rejects_is_a_validation_error(aws: LocalAws, name: str) -> None:
    status, answer, error_type = await create(aws, creation(FunctionName=name))
    assert (status, error_type) == (400, "ValidationException")
    assert "\n" not in answer["message"]  # the name is shown escaped: no forged log lines
    assert "functionName" in answer["message"]


async def test_a_name_as_long_as_aws_allows_is_created(aws: LocalAws) -> None:
    name = "a-" + uuid.uuid4().hex + "_" * 30  # 64 characters
    assert len(name) == 64
    status, answer, _ = await create(aws, creation(FunctionName=name))
    assert status == 201, answer
    assert not await absent(aws, name)


@pytest.mark.parametrize("path", ["/2015-03-31/functions", "/2015-03-31/functions/x/invocations"])
async def test_json_nested_a_hundred_thousand_deep_is_a_400(aws: LocalAws, path: str) -> None:
    if path.endswith("invocations"):
        body = creation()
        assert (await create(aws, body))[0] == 201
        path = path.replace("/x/", f"/{body['FunctionName']}/")
    status, answer, error_type = await send(aws, "POST", path, "[" * 100_000 + "]" * 100_000)
    assert (status, error_type) == (400, "InvalidRequestContentException")
    assert "nested too deeply" in answer["message"]


async def test_a_json_typed_body_that_is_not_json_is_a_400(aws: LocalAws) -> None:
    status, _, error_type = await create(aws, "FunctionName=evil&Handler=os.system")
    assert (status, error_type) == (400, "InvalidRequestContentException")


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("Marker=abc", "InvalidParameterValueException"),
        ("MaxItems=0", "ValidationException"),
        ("MaxItems=x", "ValidationException"),
    ],
)
async def test_a_bad_list_marker_or_page_size_is_a_400(
    aws: LocalAws, query: str, code: str
) -> None:
    status, _, error_type = await send(aws, "GET", f"/2015-03-31/functions?{query}")
    assert (status, error_type) == (400, code)


def code_directories(aws: LocalAws) -> list[Path]:
    root = aws.runtime.code._root  # white-box: where uploads are unpacked
    return sorted(root.iterdir()) if root is not None else []


async def test_a_zip_whose_members_collide_leaves_no_code_directory(aws: LocalAws) -> None:
    before = code_directories(aws)
    colliding = zip_of({"app.py": b"x = 1\n", "app.py/inner.py": b"y = 2\n"})
    status, answer, error_type = await create(aws, creation(Code={"ZipFile": colliding}))
    assert (status, error_type) == (400, "InvalidParameterValueException"), answer
    assert "Could not unzip" in answer["message"]
    assert code_directories(aws) == before


async def test_a_zip_bomb_is_refused_before_a_byte_is_written(aws: LocalAws) -> None:
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("zeros.bin", "w", force_zip64=True) as member,
    ):
        block = bytes(1024 * 1024)
        for _ in range(251):  # 251 MB of zeros, a few hundred KB zipped
            member.write(block)
    assert len(buffer.getvalue()) < 2_000_000
    before = code_directories(aws)
    code = {"ZipFile": base64.b64encode(buffer.getvalue()).decode()}
    status, answer, error_type = await create(aws, creation(Code=code))
    assert (status, error_type) == (400, "InvalidParameterValueException")
    assert "Unzipped size must be smaller than 262144000 bytes" in answer["message"]
    assert code_directories(aws) == before


async def test_a_zip_over_fifty_mb_is_aws_413_in_json(aws: LocalAws) -> None:
    data = base64.b64encode(bytes(50 * 1024 * 1024 + 1)).decode()  # not even a zip: size first
    status, answer, error_type = await create(aws, creation(Code={"ZipFile": data}))
    assert (status, error_type) == (413, "RequestEntityTooLargeException")
    assert "CreateFunction" in answer["message"]


async def test_a_body_that_stops_arriving_is_timed_out(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiofanout.local._control_plane import _http

    monkeypatch.setattr(_http, "BODY_TIMEOUT", 0.5)  # 30 s by default
    port = int(aws.lambda_endpoint_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"POST /2015-03-31/functions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"Fun'.encode()
        )
        await writer.drain()
        async with asyncio.timeout(30):  # a bound on the test; the server answers at 0.5 s
            status_line = await reader.readline()
    finally:
        writer.close()
    assert status_line.split()[1] == b"408"
