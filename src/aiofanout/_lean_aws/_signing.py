"""SigV4 for the lean path: AWS's own signers, never ours.

awscrt (the AWS Common Runtime, in C, the signer botocore itself uses when it is installed)
signs a request in about 16 us; botocore's pure-Python ``SigV4Auth`` takes about 100 us, and is
the fallback where awscrt cannot be imported. Both are configured as botocore configures them for
Lambda and SQS: the path double-encoded and normalized, the payload's SHA-256 signed, no
``X-Amz-Content-SHA256`` header (that one is S3's).

Every header given is signed: the lean client gives only its own (none of those a proxy may
change, which botocore leaves out). awscrt is handed the payload's SHA-256 rather than the
payload: reading a Python stream from C, and a Python callback per header, cost more than the
signature.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["BotocoreSigner", "CrtSigner", "Signer", "default_signer"]

#: The headers a SigV4 signature adds to a request.
SIGNATURE_HEADERS = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")


class Signer(Protocol):
    """Signs one request: returns the headers to send (the given ones plus the signature's)."""

    name: str

    def sign(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        credentials: Any,
    ) -> dict[str, str]: ...


class CrtSigner:
    """awscrt's SigV4 signer for one service and region (what botocore's ``CrtSigV4Auth`` does)."""

    name = "awscrt"

    def __init__(self, service: str, region: str) -> None:
        from awscrt import auth, http

        self._auth, self._http = auth, http
        self.service, self.region = service, region
        self._provider_of: tuple[tuple[str, str, str | None], Any] | None = None

    def sign(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        credentials: Any,
        *,
        now: datetime.datetime | None = None,
    ) -> dict[str, str]:
        auth, http = self._auth, self._http
        config = auth.AwsSigningConfig(
            algorithm=auth.AwsSigningAlgorithm.V4,
            signature_type=auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
            credentials_provider=self._provider(credentials),
            region=self.region,
            service=self.service,
            date=now or datetime.datetime.now(datetime.UTC),
            use_double_uri_encode=True,
            should_normalize_uri_path=True,
            signed_body_value=hashlib.sha256(body).hexdigest(),
            signed_body_header_type=auth.AwsSignedBodyHeaderType.NONE,
        )
        request = http.HttpRequest(
            method=method,
            path=_path_and_query(url),
            headers=http.HttpHeaders(list(headers.items())),
        )
        # With static credentials the signing is done when the call returns; result() only
        # hands it over (or raises what went wrong).
        auth.aws_sign_request(request, config).result()
        signed = dict(headers)
        for name in SIGNATURE_HEADERS:  # what the signer added (fewer calls into C than all)
            value = request.headers.get(name)
            if value is not None:
                signed[name] = value
        return signed

    def _provider(self, credentials: Any) -> Any:
        """A static provider for these credentials, made again only when they change."""
        key = (credentials.access_key, credentials.secret_key, credentials.token)
        if self._provider_of is None or self._provider_of[0] != key:
            provider = self._auth.AwsCredentialsProvider.new_static(*key)
            self._provider_of = (key, provider)
        return self._provider_of[1]


class BotocoreSigner:
    """botocore's ``SigV4Auth``: the signer where awscrt cannot be imported (about 6x slower)."""

    name = "botocore"

    def __init__(self, service: str, region: str) -> None:
        self.service, self.region = service, region

    def sign(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, credentials: Any
    ) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        SigV4Auth(credentials, self.service, self.region).add_auth(request)
        return dict(request.headers.items())


def default_signer(service: str, region: str) -> Signer:
    """The signer of awscrt if it imports, else botocore's."""
    try:
        return CrtSigner(service, region)
    except ImportError:  # pragma: no cover - depends on the extras installed
        return BotocoreSigner(service, region)


def _path_and_query(url: str) -> str:
    start = url.find("/", url.find("//") + 2)
    return url[start:] if start >= 0 else "/"
