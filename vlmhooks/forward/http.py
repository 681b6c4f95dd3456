"""HTTP(S) destinations: a POST signed with Standard Webhooks under every configured secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vlmhooks.errors import ConfigError
from vlmhooks.forward.destinations import Destination
from vlmhooks.forward.http_client import HttpClientError, HttpTimeout, OriginClient
from vlmhooks.forward.publish import DELIVERED, Attempt, Message, error_text
from vlmhooks.retry_timing import parse_retry_after
from vlmhooks.trust.signatures import parse_standard_webhook_secret

__all__ = ["HttpPublisher", "StandardWebhookSigner"]

USER_AGENT = "vlmhooks-forward/1"


class StandardWebhookSigner:
    """Secrets parsed once; one signature per secret, so a consumer rotating its secret
    verifies with either the old or the new one."""

    def __init__(self, secrets: Sequence[str]) -> None:
        if not secrets:
            raise ConfigError(
                "VLMHOOKS_FORWARD_SECRET is not set: http(s) destinations are signed with "
                "Standard Webhooks; give one or more whsec_ secrets"
            )
        self._hmac_keys: list[bytes] = []
        self._ed25519: list[Ed25519PrivateKey] = []
        for secret in secrets:
            try:
                parsed = parse_standard_webhook_secret(secret)
            except ConfigError as exc:
                raise ConfigError(f"VLMHOOKS_FORWARD_SECRET: {exc.detail}") from exc
            if parsed.kind == "whsec":
                self._hmac_keys.append(parsed.key)
            elif parsed.kind == "whsk":
                self._ed25519.append(Ed25519PrivateKey.from_private_bytes(parsed.key))
            else:
                raise ConfigError("VLMHOOKS_FORWARD_SECRET: a whpk_ public key cannot sign")

    def sign(self, message_id: str, timestamp: int, body: bytes) -> str:
        content = f"{message_id}.{timestamp}.".encode() + body
        entries = [
            "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
            for key in self._hmac_keys
        ]
        entries += ["v1a," + base64.b64encode(k.sign(content)).decode() for k in self._ed25519]
        return " ".join(entries)


class HttpPublisher:
    def __init__(
        self,
        destination: Destination,
        signer: StandardWebhookSigner,
        *,
        timeout: float,
        clock: Callable[[], float],
    ) -> None:
        self._destination = destination
        self._signer = signer
        self._clock = clock
        # No redirects are followed: a signed delivery is for the URL the operator configured.
        # HTTPS_PROXY, HTTP_PROXY and NO_PROXY are read here, once, as curl reads them.
        self._client = OriginClient(destination.url, timeout=timeout, environ=os.environ)

    async def publish(self, message: Message) -> Attempt:
        timestamp = int(self._clock())
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": message.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": self._signer.sign(message.id, timestamp, message.body),
        }
        try:
            response = await self._client.post(message.body, headers)
        except HttpTimeout:
            return Attempt("retry", "timed out")
        except HttpClientError as exc:
            return Attempt("retry", self._destination.scrub(error_text(exc)))
        status = response.status
        if 200 <= status < 300:
            return DELIVERED
        if status == 410:
            return Attempt("gone", "HTTP 410 Gone: the destination asked not to be called again")
        retry_after = parse_retry_after(response.headers.get("retry-after"), now=self._clock())
        return Attempt("retry", f"HTTP {status}", retry_after)

    async def aclose(self) -> None:
        await self._client.aclose()
