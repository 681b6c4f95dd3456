"""Request ``images`` values (raw base64, ``data:`` URLs, http(s) URLs) to encoded image bytes."""

from __future__ import annotations

import base64
import binascii
import ipaddress
from urllib.parse import unquote, urlsplit

from sandbox.errors import LoopbackImageURL, NoNetwork, PredictionFailed

__all__ = ["decode_image_value"]


def decode_image_value(value: str, *, index: int | None = None) -> bytes:
    """The bytes of one ``images`` entry: raw base64 or a ``data:image/...;base64,`` URL.

    Does no I/O. An http(s) URL raises ``NoNetwork`` (the sandbox has none), except a
    loopback one (localhost, 127.0.0.0/8, ::1), which raises ``LoopbackImageURL`` so a caller
    able to fetch can do so. Both are ``PredictionFailed``. The bytes are not checked to
    be an image here; ``predict`` does that.
    """
    where = "image" if index is None else f"image #{index}"
    if not isinstance(value, str):
        raise PredictionFailed(
            f"{where} is a {type(value).__name__}, expected a string", image_index=index
        )
    text = value.strip()
    if text[:8].lower().startswith(("http://", "https://")):
        host = urlsplit(text).hostname or ""
        if _is_loopback(host):
            raise LoopbackImageURL(
                f"{where} is a loopback URL ({text}); fetch it and pass the bytes",
                url=text,
                image_index=index,
            )
        raise NoNetwork(
            f"{where} is a URL ({text}) but the sandbox has no network; "
            "send the image inline as base64 or a data: URL",
            url=text,
            image_index=index,
        )
    if text[:5].lower() == "data:":
        header, comma, payload = text.partition(",")
        if not comma:
            raise PredictionFailed(f"{where} is a malformed data URL (no comma)", image_index=index)
        media_type, *params = header[5:].split(";")
        if "base64" not in (p.strip().lower() for p in params):
            raise PredictionFailed(
                f"{where} is a data URL without ';base64'; only base64 data URLs are accepted",
                image_index=index,
            )
        media_type = media_type.strip().lower()
        if media_type and not media_type.startswith("image/"):
            raise PredictionFailed(
                f"{where} is a data URL of type {media_type}, expected image/*",
                image_index=index,
            )
        return _decode_base64(unquote(payload), where, index)
    return _decode_base64(text, where, index)


def _decode_base64(payload: str, where: str, index: int | None) -> bytes:
    # Tolerate what real clients send: line breaks, URL-safe alphabet, missing padding.
    compact = "".join(payload.split()).translate(str.maketrans("-_", "+/"))
    if not compact:
        raise PredictionFailed(f"{where} is empty", image_index=index)
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PredictionFailed(
            f"{where} is neither base64 nor a data: URL ({exc})", image_index=index
        ) from exc


def _is_loopback(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
