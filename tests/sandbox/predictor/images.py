"""Small encoded test images, built with Pillow so each test says what its pixels are."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

RGB = tuple[int, int, int]


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def solid(color: RGB, size: tuple[int, int] = (64, 64), fmt: str = "PNG") -> bytes:
    return encode(Image.new("RGB", size, color), fmt)


def halves(left: RGB, right: RGB, size: tuple[int, int] = (64, 64)) -> bytes:
    image = Image.new("RGB", size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return encode(image)


def scene(seed: int, size: tuple[int, int] = (120, 80)) -> bytes:
    """A busy picture whose content depends on ``seed``."""
    image = Image.new("RGB", size, ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256))
    draw = ImageDraw.Draw(image)
    for i in range(6):
        x, y = (seed * 17 + i * 23) % size[0], (seed * 29 + i * 11) % size[1]
        color = ((seed + i) * 71 % 256, (seed * i) * 13 % 256, (i * 40) % 256)
        draw.rectangle((x, y, x + 25, y + 18), fill=color)
    return encode(image)
