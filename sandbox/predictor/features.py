"""What the sandbox measures in one encoded image: size, light, edges, colors, hashes."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from PIL import Image, ImageFilter, UnidentifiedImageError

from sandbox.errors import PredictionFailed

__all__ = ["DEFAULT_MAX_PIXELS", "ImageFeatures", "extract_features", "hamming_distance"]

# Refuse decompression bombs well before Pillow's own 2x MAX_IMAGE_PIXELS hard error.
DEFAULT_MAX_PIXELS = 64_000_000

_WORK_SIZE = 64  # features are measured on a thumbnail at most this big
_PALETTE_SIZE = 8
_EDGE_LEVEL = 32  # FIND_EDGES response that counts as an edge
_SAME_COLOR = 24  # RGB distance under which two palette entries count as one color


@dataclass(frozen=True)
class ImageFeatures:
    """What the sandbox measures in one image; ``to_json`` is what ``_sandbox.images`` holds."""

    width: int
    height: int
    format: str
    mode: str
    aspect_ratio: float  # width / height, 4 decimals
    brightness: float  # mean luma, 0 (black) .. 1 (white), 4 decimals
    edge_density: float  # share of thumbnail pixels on an edge; text makes it high
    dominant_colors: tuple[str, ...]  # up to 3 "#rrggbb", most frequent first
    color_fractions: tuple[float, ...]  # share of the picture for each dominant color
    average_hash: str  # 64-bit aHash, 16 hex chars
    difference_hash: str  # 64-bit dHash, 16 hex chars
    pixel_sha256: str  # digest of the size and the normalized thumbnail; seeds the values

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["dominant_colors"] = list(self.dominant_colors)
        data["color_fractions"] = list(self.color_fractions)
        return data


def extract_features(
    data: bytes, *, index: int = 0, max_pixels: int = DEFAULT_MAX_PIXELS
) -> ImageFeatures:
    """Measure one encoded image; ``PredictionFailed`` when Pillow cannot decode it."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise PredictionFailed(
                    f"image #{index} is {width}x{height}, over the {max_pixels} pixel limit",
                    image_index=index,
                )
            fmt, mode = image.format or "unknown", image.mode
            image.draft("RGB", (_WORK_SIZE, _WORK_SIZE))  # JPEG: decode at 1/8 scale
            rgb = _flatten_to_rgb(image)
    except PredictionFailed:
        raise
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
    ) as exc:
        raise PredictionFailed(
            f"image #{index} cannot be decoded as an image: {exc}", image_index=index
        ) from exc
    if width == 0 or height == 0:
        raise PredictionFailed(f"image #{index} has no pixels", image_index=index)

    rgb.thumbnail((_WORK_SIZE, _WORK_SIZE), Image.Resampling.BOX)
    gray = rgb.convert("L")
    gray_values = gray.tobytes()  # one byte per pixel; getdata() is deprecated in Pillow 13
    brightness = sum(gray_values) / (len(gray_values) * 255)
    edges = gray.filter(ImageFilter.FIND_EDGES).tobytes()
    edge_density = sum(v > _EDGE_LEVEL for v in edges) / len(edges)
    colors, fractions = _dominant_colors(rgb)
    digest = hashlib.sha256(f"{width}x{height}:".encode() + rgb.tobytes()).hexdigest()
    return ImageFeatures(
        width=width,
        height=height,
        format=fmt,
        mode=mode,
        aspect_ratio=round(width / height, 4),
        brightness=round(brightness, 4),
        edge_density=round(edge_density, 4),
        dominant_colors=colors,
        color_fractions=fractions,
        average_hash=_average_hash(gray),
        difference_hash=_difference_hash(gray),
        pixel_sha256=digest,
    )


def hamming_distance(a: str, b: str) -> int:
    """How many bits differ between two hex hashes (``average_hash``, ``difference_hash``)."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _flatten_to_rgb(image: Image.Image) -> Image.Image:
    """RGB pixels; transparency is composited over white, as a viewer would show it."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _dominant_colors(rgb: Image.Image) -> tuple[tuple[str, ...], tuple[float, ...]]:
    quantized = rgb.quantize(colors=_PALETTE_SIZE, method=Image.Quantize.MEDIANCUT)
    palette = quantized.getpalette() or []
    counted: list[tuple[int, tuple[int, int, int]]] = []
    for count, slot in quantized.getcolors() or []:
        assert isinstance(slot, int)  # a palette image's "color" is its palette index
        red, green, blue = palette[slot * 3 : slot * 3 + 3]
        counted.append((count, (red, green, blue)))
    # Median cut splits a big flat area (a white page) into near-twins; fold those together
    # so the three colors reported are three different colors.
    picked: list[tuple[tuple[int, int, int], int]] = []
    for count, color in sorted(counted, key=lambda item: (-item[0], item[1])):
        for i, (kept, kept_count) in enumerate(picked):
            if sum((a - b) ** 2 for a, b in zip(color, kept, strict=True)) <= _SAME_COLOR**2:
                picked[i] = (kept, kept_count + count)
                break
        else:
            picked.append((color, count))
    top = sorted(picked, key=lambda item: (-item[1], item[0]))[:3]
    total = rgb.width * rgb.height
    return (
        tuple("#{:02x}{:02x}{:02x}".format(*color) for color, _ in top),
        tuple(round(count / total, 4) for _, count in top),
    )


def _average_hash(gray: Image.Image) -> str:
    pixels = gray.resize((8, 8), Image.Resampling.BOX).tobytes()
    mean = sum(pixels) / 64
    return _bits_to_hex(p > mean for p in pixels)


def _difference_hash(gray: Image.Image) -> str:
    small = gray.resize((9, 8), Image.Resampling.BOX)
    pixels = small.tobytes()
    return _bits_to_hex(
        pixels[row * 9 + col] > pixels[row * 9 + col + 1] for row in range(8) for col in range(8)
    )


def _bits_to_hex(bits: Iterable[bool]) -> str:
    value = 0
    for bit in bits:
        value = (value << 1) | int(bool(bit))
    return f"{value:016x}"
