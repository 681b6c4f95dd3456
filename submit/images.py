"""Image inputs for a prediction request: expand paths, directories, URLs, bytes and PIL images.

Expansion is lazy and cheap: a file is stat'ed and its first ``SNIFF_BYTES`` bytes are read
to learn its type (that is how directories skip non-images); the whole file is read, capped
and base64-encoded only when ``ImageSource.to_request_value()`` is called, and re-checked
then (it may have changed or vanished in between). URLs are passed through untouched.
``bytes`` and PIL images are already in memory: they are checked (PIL images encoded to PNG,
a snapshot) during expansion.
"""

from __future__ import annotations

import base64
import io
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image

from submit.errors import (
    ImageError,
    ImageNotFound,
    ImageTooLarge,
    ImageUnreadable,
    UnsupportedImage,
)

__all__ = [
    "DEFAULT_MAX_IMAGE_BYTES",
    "SNIFF_BYTES",
    "FileImage",
    "ImageInput",
    "ImageSource",
    "InlineImage",
    "UrlImage",
    "encode_data_url",
    "expand_image_inputs",
    "sniff_image_mime",
]

DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024
# Enough for every signature below; BMP needs its DIB header size at offset 14..18.
SNIFF_BYTES = 32

ImageInput = str | Path | bytes | Image.Image

_SUPPORTED = "PNG, JPEG, WebP, GIF, BMP or TIFF"
# Sizes of the known BMP DIB headers (BITMAPCOREHEADER .. BITMAPV5HEADER); "BM" alone is
# too weak a signature to tell a bitmap from a text file that starts with "BM".
_BMP_DIB_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
# Modes PNG stores as they are; anything else is converted first.
_PNG_MODES = frozenset({"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"})


def sniff_image_mime(head: bytes) -> str | None:
    """The MIME type of an image from its first bytes, or None when it is not a known image."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if (
        head[:2] == b"BM"
        and len(head) >= 18
        and int.from_bytes(head[14:18], "little") in _BMP_DIB_HEADER_SIZES
    ):
        return "image/bmp"
    return None


def encode_data_url(data: bytes, mime: str) -> str:
    """``data:<mime>;base64,<payload>``, the form the API and its SDK use for inline images."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


@dataclass(frozen=True)
class ImageSource:
    """One image of a request; ``label`` names it in messages (path, URL or ``<bytes>``)."""

    label: str

    def to_request_value(self) -> str:
        """The string to put in the request's ``images`` list."""
        raise NotImplementedError


@dataclass(frozen=True)
class UrlImage(ImageSource):
    """An http(s) URL, sent as it is for the API to fetch."""

    url: str

    def to_request_value(self) -> str:
        return self.url


@dataclass(frozen=True)
class InlineImage(ImageSource):
    """Image bytes already in memory (given as ``bytes`` or encoded from a PIL image)."""

    data: bytes
    mime: str

    def to_request_value(self) -> str:
        return encode_data_url(self.data, self.mime)


@dataclass(frozen=True)
class FileImage(ImageSource):
    """A file on disk, read only when encoded; ``mime`` is what expansion sniffed."""

    path: Path
    mime: str
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES

    def read(self) -> tuple[bytes, str]:
        """The file's bytes and their sniffed MIME type, checked again as they are now."""
        data = _read_capped(self.path, self.label, self.max_bytes)
        mime = sniff_image_mime(data[:SNIFF_BYTES])
        if mime is None:
            raise _unsupported(self.label, data[:SNIFF_BYTES])
        return data, mime

    def to_request_value(self) -> str:
        data, mime = self.read()
        return encode_data_url(data, mime)


def expand_image_inputs(
    inputs: Iterable[ImageInput] | ImageInput,
    *,
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
) -> Iterator[ImageSource]:
    """Yield one ``ImageSource`` per image, in input order; directories expand sorted.

    Raises ``ImageError`` (a subclass naming the input) for a missing path, an unreadable
    or non-image file named explicitly, a directory without images, or an image over
    ``max_bytes``. Non-image files inside a directory are skipped. A lone ``str``, ``Path``,
    ``bytes`` or PIL image is treated as a one-item list.
    """
    if isinstance(inputs, str | Path | bytes | Image.Image):
        inputs = [inputs]
    for position, item in enumerate(inputs):
        if isinstance(item, Image.Image):
            yield _from_pil(item, position, max_bytes)
        elif isinstance(item, bytes):
            yield _from_bytes(item, position, max_bytes)
        elif isinstance(item, str) and _is_http_url(item):
            yield UrlImage(label=item, url=item)
        elif isinstance(item, str | Path):
            yield from _from_path(Path(item), str(item), max_bytes)
        else:
            raise TypeError(
                f"image input #{position} is a {type(item).__name__}; expected a path, "
                "an http(s) URL, bytes or a PIL image"
            )


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def _from_bytes(data: bytes, position: int, max_bytes: int) -> InlineImage:
    label = "<bytes>"
    where = f"{label} (input #{position})"
    mime = sniff_image_mime(data[:SNIFF_BYTES])
    if mime is None:
        raise _unsupported(where, data[:SNIFF_BYTES], source=label)
    if len(data) > max_bytes:
        raise _too_large(where, len(data), max_bytes, source=label)
    return InlineImage(label=label, data=data, mime=mime)


def _from_pil(image: Image.Image, position: int, max_bytes: int) -> InlineImage:
    label = "<PIL image>"
    if image.mode not in _PNG_MODES:
        has_alpha = "A" in image.getbands() or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    buffer = io.BytesIO()
    try:
        image.save(buffer, format="PNG")
    except (OSError, ValueError) as exc:
        raise ImageUnreadable(
            f"{label} (input #{position}) cannot be encoded as PNG: {exc}", source=label
        ) from exc
    data = buffer.getvalue()
    if len(data) > max_bytes:
        raise _too_large(f"{label} (input #{position})", len(data), max_bytes, source=label)
    return InlineImage(label=label, data=data, mime="image/png")


def _from_path(path: Path, label: str, max_bytes: int) -> Iterator[FileImage]:
    """``label`` is the input as the user wrote it (``Path`` would fold ``//``)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        hint = " (only http:// and https:// URLs are passed on)" if "://" in label else ""
        raise ImageNotFound(f"image path not found: {label}{hint}", source=label) from None
    except OSError as exc:
        raise _unreadable(label, exc) from exc
    if stat.S_ISDIR(info.st_mode):
        yield from _from_directory(path, max_bytes)
        return
    if not stat.S_ISREG(info.st_mode):
        raise ImageUnreadable(f"{label} is not a regular file", source=label)
    head = _read_head(path, label)
    mime = sniff_image_mime(head)
    if mime is None:
        raise _unsupported(label, head)
    if info.st_size > max_bytes:
        raise _too_large(label, info.st_size, max_bytes)
    yield FileImage(label=label, path=path, mime=mime, max_bytes=max_bytes)


def _from_directory(directory: Path, max_bytes: int) -> Iterator[FileImage]:
    def fail(exc: OSError) -> None:
        raise _unreadable(str(exc.filename or directory), exc) from exc

    # Symlinked directories are not followed (no loops); symlinked files are.
    files = sorted(
        Path(root, name)
        for root, _dirs, names in os.walk(directory, onerror=fail, followlinks=False)
        for name in names
    )
    found = 0
    for path in files:
        label = str(path)
        try:
            info = path.stat()
        except FileNotFoundError:
            continue  # a dangling symlink, or deleted while walking
        except OSError as exc:
            raise _unreadable(label, exc) from exc
        if not stat.S_ISREG(info.st_mode):
            continue  # sockets, FIFOs (opening one would block)
        mime = sniff_image_mime(_read_head(path, label))
        if mime is None:
            continue
        if info.st_size > max_bytes:
            raise _too_large(label, info.st_size, max_bytes)
        found += 1
        yield FileImage(label=label, path=path, mime=mime, max_bytes=max_bytes)
    if not found:
        raise ImageError(
            f"no images ({_SUPPORTED}) found in directory {directory}", source=str(directory)
        )


def _read_head(path: Path, label: str) -> bytes:
    try:
        with path.open("rb") as file:
            return file.read(SNIFF_BYTES)
    except FileNotFoundError:
        raise ImageNotFound(f"image path not found: {label}", source=label) from None
    except OSError as exc:
        raise _unreadable(label, exc) from exc


def _read_capped(path: Path, label: str, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as file:
            # Read one byte past the cap: enough to know it is too large, never the whole file.
            data = file.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise _too_large(label, max(os.fstat(file.fileno()).st_size, len(data)), max_bytes)
            return data
    except FileNotFoundError:
        raise ImageNotFound(
            f"image file not found (it was there when the inputs were expanded): {label}",
            source=label,
        ) from None
    except OSError as exc:
        raise _unreadable(label, exc) from exc


def _unreadable(label: str, exc: OSError) -> ImageUnreadable:
    reason = exc.strerror or str(exc)
    return ImageUnreadable(f"cannot read image file {label}: {reason}", source=label)


def _unsupported(where: str, head: bytes, *, source: str | None = None) -> UnsupportedImage:
    start = f"it starts with {head[:8].hex(' ')}" if head else "it is empty"
    return UnsupportedImage(
        f"{where} is not a supported image (expected {_SUPPORTED}); {start}",
        source=where if source is None else source,
    )


def _too_large(where: str, size: int, limit: int, *, source: str | None = None) -> ImageTooLarge:
    return ImageTooLarge(
        f"{where} is {_mib(size)} ({size} bytes), over the {_mib(limit)} limit ({limit} bytes)",
        source=where if source is None else source,
        size=size,
        limit=limit,
    )


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"
