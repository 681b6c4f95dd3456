"""Small sample images shipped with the sandbox for the demo, and the code that drew them.

The files in ``sandbox/samples/`` are committed; ``python -m sandbox.samples`` redraws them.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

__all__ = ["SAMPLES_DIR", "SAMPLE_DOMAINS", "generate_samples", "sample_paths"]

SAMPLES_DIR = Path(__file__).parent / "samples"
# The domain the demo submits each sample with.
SAMPLE_DOMAINS: dict[str, str] = {
    "invoice.png": "document.invoice",
    "receipt.png": "document.receipt",
    "photo.jpg": "image.caption",
    "product.png": "retail.product-catalog",
}
_SUFFIXES = (".png", ".jpg")

_NAVY = (24, 45, 89)
_INK = (40, 40, 40)
_RULE = (190, 196, 206)


def sample_paths() -> list[Path]:
    """The shipped sample images, sorted by name."""
    return sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix in _SUFFIXES)


def generate_samples(dest: Path) -> list[Path]:
    """Draw every sample into ``dest`` (created if missing) and return the paths, sorted."""
    dest.mkdir(parents=True, exist_ok=True)
    drawers: dict[str, Callable[[Path], None]] = {
        "invoice.png": _draw_invoice,
        "receipt.png": _draw_receipt,
        "photo.jpg": _draw_photo,
        "product.png": _draw_product,
    }
    paths = []
    for name, draw in drawers.items():
        path = dest / name
        draw(path)
        paths.append(path)
    return sorted(paths)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _save_png(image: Image.Image, path: Path, colors: int) -> None:
    # A small palette keeps flat artwork with anti-aliased text well under 40 KB.
    image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, format="PNG", optimize=True
    )


def _draw_invoice(path: Path) -> None:
    width, height = 620, 800
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width, 70), fill=_NAVY)
    draw.text((30, 20), "INVOICE", font=_font(28), fill="white")
    draw.text((420, 18), "Northwind Supply Co.", font=_font(14), fill="white")
    draw.text((420, 38), "12 Market St, Portland", font=_font(12), fill="white")
    small, body = _font(12), _font(14)
    meta = (
        ("Invoice no.", "INV-2024-00172"),
        ("Issue date", "2024-03-04"),
        ("Due date", "2024-04-03"),
    )
    for row, (label, value) in enumerate(meta):
        draw.text((30, 95 + row * 20), label, font=small, fill=(110, 110, 110))
        draw.text((130, 95 + row * 20), value, font=body, fill=_INK)
    draw.text((380, 95), "Bill to", font=small, fill=(110, 110, 110))
    draw.text((380, 113), "Blue Harbor Labs", font=body, fill=_INK)
    draw.text((380, 131), "400 Oak Ave, Austin TX", font=small, fill=_INK)

    top, row_height = 190, 30
    columns = (30, 330, 420, 500, width - 30)
    items = (
        ("Cloud hosting (March)", "1", "420.00", "420.00"),
        ("Support plan", "3", "75.00", "225.00"),
        ("Data migration", "8", "95.00", "760.00"),
        ("Training session", "2", "180.00", "360.00"),
    )
    draw.rectangle((columns[0], top, columns[-1], top + row_height), fill=(232, 236, 244))
    for x, heading in zip(columns, ("Description", "Qty", "Unit", "Amount"), strict=False):
        draw.text((x + 8, top + 8), heading, font=small, fill=_NAVY)
    for row, cells in enumerate(items, start=1):
        y = top + row * row_height
        for x, cell in zip(columns, cells, strict=False):
            draw.text((x + 8, y + 8), cell, font=small, fill=_INK)
    bottom = top + (len(items) + 1) * row_height
    for row in range(len(items) + 2):
        y = top + row * row_height
        draw.line((columns[0], y, columns[-1], y), fill=_RULE, width=1)
    for x in columns:
        draw.line((x, top, x, bottom), fill=_RULE, width=1)

    totals = (("Subtotal", "1765.00"), ("Tax (8%)", "141.20"), ("Total USD", "1906.20"))
    for row, (label, value) in enumerate(totals):
        y = bottom + 20 + row * 24
        font = _font(15) if row == len(totals) - 1 else small
        draw.text((420, y), label, font=font, fill=_INK)
        draw.text((510, y), value, font=font, fill=_INK)
    draw.line((30, height - 80, width - 30, height - 80), fill=_RULE)
    footer = "Payment terms: Net 30. Thank you for your business."
    draw.text((30, height - 65), footer, font=small, fill=_INK)
    _save_png(image, path, colors=16)


def _draw_receipt(path: Path) -> None:
    width, height = 280, 640
    image = Image.new("L", (width, height), 250)
    draw = ImageDraw.Draw(image)
    font, big = _font(13), _font(18)
    draw.text((width // 2, 24), "CEDAR MARKET", font=big, fill=20, anchor="mm")
    draw.text((width // 2, 46), "88 Elm Rd, Denver CO", font=font, fill=60, anchor="mm")
    draw.text((width // 2, 64), "2024-05-18  14:32", font=font, fill=60, anchor="mm")
    lines = (
        ("Coffee beans", "12.99"),
        ("Whole milk", "3.49"),
        ("Sourdough bread", "5.25"),
        ("Bananas 1.2 lb", "0.84"),
        ("Olive oil", "9.99"),
    )
    y = 100
    for name, price in lines:
        draw.text((18, y), name, font=font, fill=30)
        draw.text((width - 18, y), price, font=font, fill=30, anchor="ra")
        y += 24
    # A dashed rule, as thermal printers do it.
    for x in range(18, width - 18, 8):
        draw.line((x, y + 6, x + 4, y + 6), fill=90)
    y += 20
    for label, value in (("SUBTOTAL", "32.56"), ("TAX", "1.95"), ("TOTAL", "34.51")):
        draw.text((18, y), label, font=font, fill=20)
        draw.text((width - 18, y), value, font=font, fill=20, anchor="ra")
        y += 22
    draw.text((18, y + 14), "VISA **** 4417", font=font, fill=50)
    # A barcode-like block of bars near the bottom.
    x = 40
    for i in range(48):
        bar = 1 + (i * 7 + 3) % 3
        draw.rectangle((x, height - 110, x + bar - 1, height - 50), fill=15)
        x += bar + 2
    draw.text((width // 2, height - 30), "THANK YOU", font=font, fill=40, anchor="mm")
    image.save(path, format="PNG", optimize=True)


def _draw_photo(path: Path) -> None:
    """A landscape: a sky gradient, a sun, two hills and a lake, saved as JPEG."""
    width, height = 480, 320
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    horizon = int(height * 0.6)
    for y in range(horizon):
        t = y / horizon
        sky = (int(70 + 150 * t), int(130 + 90 * t), int(220 - 20 * t))
        draw.line((0, y, width, y), fill=sky)
    draw.ellipse((330, 40, 390, 100), fill=(255, 226, 140))
    for base, amplitude, shade, phase in (
        (horizon - 30, 40, (70, 120, 60), 0.0),
        (horizon - 5, 25, (45, 95, 45), 1.7),
    ):
        points: list[tuple[float, float]] = [(0, height)]
        for x in range(0, width + 1, 8):
            points.append((x, base - amplitude * math.sin(x / 70 + phase) ** 2))
        points.append((width, height))
        draw.polygon(points, fill=shade)
    for y in range(horizon + 20, height):
        t = (y - horizon) / (height - horizon)
        draw.line((0, y, width, y), fill=(int(40 + 40 * t), int(90 + 40 * t), int(150 + 30 * t)))
    image.save(path, format="JPEG", quality=82, optimize=True)


def _draw_product(path: Path) -> None:
    """A studio shot: a red mug on a light backdrop with a soft shadow."""
    size = 400
    image = Image.new("RGB", (size, size), (238, 238, 240))
    draw = ImageDraw.Draw(image)
    draw.ellipse((110, 300, 300, 340), fill=(205, 205, 210))
    draw.rounded_rectangle((120, 130, 260, 320), radius=18, fill=(196, 40, 48))
    draw.ellipse((120, 118, 260, 146), fill=(150, 28, 36))
    draw.ellipse((130, 122, 250, 142), fill=(70, 20, 24))
    draw.arc((200, 175, 290, 265), start=-80, end=80, fill=(196, 40, 48), width=16)
    draw.rectangle((140, 150, 152, 300), fill=(222, 90, 96))  # a highlight
    _save_png(image, path, colors=24)


def main(argv: list[str] | None = None) -> int:
    """Redraw the samples into the package (or into the directory given)."""
    args = sys.argv[1:] if argv is None else argv
    dest = Path(args[0]) if args else SAMPLES_DIR
    for path in generate_samples(dest):
        print(f"{path}  {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
