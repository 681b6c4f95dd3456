"""A deterministic stand-in for the model: features measured from the real pixels with Pillow,
shaped like the requested domain's output, or like ``config["json_schema"]`` when one is given.

Same pixels in, same response out; different pixels, a different response. Every value is
drawn from a SHA-256 stream seeded by the decoded pixels, never from the clock or ``random``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import ipaddress
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any, ClassVar, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from jsonschema import exceptions as jsonschema_exceptions
from jsonschema import validators
from PIL import Image, ImageFilter, UnidentifiedImageError

from sandbox.errors import LoopbackImageURL, NoNetwork, PredictionFailed

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DOMAINS",
    "SANDBOX_KEY",
    "ImageFeatures",
    "PillowPredictor",
    "Predictor",
    "decode_image_value",
    "extract_features",
    "instance_for_schema",
]

DOMAINS: tuple[str, ...] = (
    "aerospace.remote-sensing",
    "document.ocr",
    "document.generative",
    "document.invoice",
    "document.markdown",
    "document.presentation",
    "document.receipt",
    "document.resume",
    "document.utility-bill",
    "image.caption",
    "retail.product-catalog",
    "retail.ecommerce-product-caption",
    "video.tv-news",
    "video.caption",
    "video.commentary",
)
# Where the response says it came from the sandbox; no domain field starts with "_".
SANDBOX_KEY = "_sandbox"
# Refuse decompression bombs well before Pillow's own 2x MAX_IMAGE_PIXELS hard error.
DEFAULT_MAX_PIXELS = 64_000_000
DEFAULT_FRAME_INTERVAL_S = 1.0

_WORK_SIZE = 64  # features are measured on a thumbnail at most this big
_PALETTE_SIZE = 8
_EDGE_LEVEL = 32  # FIND_EDGES response that counts as an edge
# Pages of text are edgier than photos or product shots (samples: ~0.21-0.29 vs ~0.13).
_DOCUMENT_EDGE_DENSITY = 0.18
_PLAIN_FRACTION = 0.97  # one color everywhere: nothing in the picture
_BACKDROP_FRACTION = 0.6  # one color over this share reads as a studio backdrop
_SAME_COLOR = 24  # RGB distance under which two palette entries count as one color
_SCHEMA_MAX_DEPTH = 8
_EPOCH = date(2023, 1, 1)
_SCENE_CHANGE_BITS = 12  # dHash bits that differ between frames of different shots

T = TypeVar("T")


class Predictor(Protocol):
    """What the sandbox server calls to turn decoded images into a prediction ``response``."""

    def predict(
        self, images: Sequence[bytes], domain: str, config: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """The ``response`` JSON; raises ``PredictionFailed`` for bad images or config."""
        ...


# -- decoding request values --------------------------------------------------------------


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


# -- features -----------------------------------------------------------------------------


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


def _bits_to_hex(bits: Any) -> str:
    value = 0
    for bit in bits:
        value = (value << 1) | int(bool(bit))
    return f"{value:016x}"


def _hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


# -- the predictor ------------------------------------------------------------------------


class PillowPredictor:
    """The sandbox's ``Predictor``: deterministic, offline, computed from the pixels."""

    name: ClassVar[str] = "pillow"
    version: ClassVar[int] = 1

    def __init__(
        self,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        frame_interval_s: float = DEFAULT_FRAME_INTERVAL_S,
    ) -> None:
        self.max_pixels = max_pixels
        self.frame_interval_s = frame_interval_s

    def predict(
        self, images: Sequence[bytes], domain: str, config: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The ``response`` for ``images``, shaped by ``config["json_schema"]`` or ``domain``.

        An empty ``json_schema`` (``{}``, as in the API reference example) counts as none.
        With a schema, the ``_sandbox`` metadata is left out only when the schema forbids
        extra properties, so that the response still validates.
        """
        if not images:
            raise PredictionFailed("no images to predict on")
        features = [
            extract_features(data, index=i, max_pixels=self.max_pixels)
            for i, data in enumerate(images)
        ]
        seed = hashlib.sha256("|".join(f.pixel_sha256 for f in features).encode()).digest()
        metadata: dict[str, Any] = {
            "predictor": self.name,
            "version": self.version,
            "domain": domain,
            "images": [f.to_json() for f in features],
        }
        schema = (config or {}).get("json_schema")
        if schema:
            return _respond_to_schema(schema, _Draw(seed, "json_schema"), metadata)
        shape = _DOMAIN_SHAPES.get(domain)
        if shape is None:
            raise PredictionFailed(f"unknown domain {domain!r}; expected one of {DOMAINS}")
        response = shape(_Context(features, _Draw(seed, domain), self.frame_interval_s))
        response[SANDBOX_KEY] = metadata
        return response


# -- deterministic draws ------------------------------------------------------------------


class _Draw:
    """A stream of numbers from SHA-256(seed, salt, counter): stable across Python versions."""

    def __init__(self, seed: bytes, salt: str) -> None:
        self._seed = seed + salt.encode()
        self._counter = 0

    def below(self, n: int) -> int:
        if n <= 1:
            return 0
        block = hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
        self._counter += 1
        return int.from_bytes(block[:8], "big") % n

    def integer(self, low: int, high: int) -> int:
        return low + self.below(high - low + 1)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.below(len(options))]

    def sample(self, options: Sequence[T], k: int) -> list[T]:
        pool = list(options)
        return [pool.pop(self.below(len(pool))) for _ in range(min(k, len(pool)))]

    def digits(self, n: int) -> str:
        return "".join(str(self.below(10)) for _ in range(n))

    def day(self, start: date = _EPOCH, span_days: int = 900) -> date:
        return start + timedelta(days=self.below(span_days))

    def raw(self, n: int) -> bytes:
        return bytes(self.below(256) for _ in range(n))


def _money(cents: int) -> float:
    return round(cents / 100, 2)


def _percent_of(cents: int, basis_points: int) -> int:
    return (cents * basis_points + 5_000) // 10_000  # half-up, in whole cents


# -- vocabulary ---------------------------------------------------------------------------

_FIRST_NAMES = (
    "Ada", "Amara", "Ben", "Carlos", "Chen", "Dana", "Elena", "Farid", "Grace", "Hiro",
    "Ines", "Jonas", "Kemi", "Lena", "Mateo", "Nadia", "Omar", "Priya", "Ravi", "Sofia",
)  # fmt: skip
_LAST_NAMES = (
    "Andersen", "Bauer", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Haddad", "Ito",
    "Jensen", "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Patel", "Rossi", "Singh",
)  # fmt: skip
_COMPANY_WORDS = (
    "Acme", "Blue Harbor", "Cedar", "Northwind", "Summit", "Pioneer", "Silverline",
    "Brightpath", "Ironwood", "Lakeside", "Redstone", "Evergreen", "Keystone", "Orbit",
)  # fmt: skip
_COMPANY_KINDS = ("Supply Co.", "Labs", "Consulting", "Logistics", "Systems", "Traders", "GmbH")
_STREETS = ("Main St", "Oak Ave", "Market St", "Elm Rd", "Harbor Blvd", "Mill Ln", "Park Way")
_CITIES = (
    ("Springfield", "IL", "US"), ("Portland", "OR", "US"), ("Austin", "TX", "US"),
    ("Toronto", "ON", "CA"), ("Leeds", "WYK", "GB"), ("Lyon", "ARA", "FR"),
    ("Munich", "BY", "DE"), ("Denver", "CO", "US"),
)  # fmt: skip
_SERVICES = (
    "Consulting services", "Software license", "Cloud hosting", "Support plan",
    "Hardware maintenance", "Design work", "Data migration", "Training session",
    "Shipping and handling", "Office supplies", "Network equipment", "Security audit",
)  # fmt: skip
_GROCERIES = (
    "Coffee beans", "Whole milk", "Sourdough bread", "Bananas", "Eggs (12)", "Olive oil",
    "Cheddar", "Pasta", "Tomatoes", "Sparkling water", "Granola", "Chocolate bar",
)  # fmt: skip
_WORDS = (
    "quarterly", "revenue", "forecast", "customer", "delivery", "schedule", "project",
    "review", "update", "account", "service", "summary", "total", "region", "growth",
    "report", "team", "market", "product", "support", "plan", "results", "budget", "order",
)  # fmt: skip
_SKILLS = (
    "Python", "SQL", "Data analysis", "Project management", "Public speaking", "Docker",
    "Financial modeling", "UX research", "Kubernetes", "Technical writing", "Negotiation",
)  # fmt: skip
_JOB_TITLES = ("Software Engineer", "Data Analyst", "Product Manager", "Accountant", "Designer")
_DEGREES = ("B.Sc.", "B.A.", "M.Sc.", "MBA", "Ph.D.")
_FIELDS = ("Computer Science", "Economics", "Mechanical Engineering", "Design", "Mathematics")
_UNIVERSITIES = ("State University", "Institute of Technology", "City College", "Polytechnic")
_CURRENCIES = ("USD", "EUR", "GBP", "CAD")
_PRODUCT_KINDS = (
    ("Apparel", ("T-shirt", "Hoodie", "Sneakers", "Cap")),
    ("Home & Kitchen", ("Ceramic mug", "Water bottle", "Table lamp", "Throw pillow")),
    ("Electronics", ("Wireless earbuds", "Phone case", "USB-C charger", "Speaker")),
    ("Beauty", ("Face cream", "Shampoo bottle", "Perfume", "Lip balm")),
)
_BRANDS = ("Lumen", "Northpeak", "Vela", "Kinto", "Oakline", "Mira", "Solace", "Tidewater")
_NEWS_TOPICS = ("economy", "weather", "sports", "politics", "technology", "health", "culture")
_NAMED_COLORS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("white", (255, 255, 255)), ("black", (0, 0, 0)), ("gray", (128, 128, 128)),
    ("silver", (192, 192, 192)), ("red", (220, 20, 60)), ("maroon", (128, 0, 0)),
    ("orange", (255, 140, 0)), ("yellow", (255, 215, 0)), ("olive", (128, 128, 0)),
    ("green", (34, 139, 34)), ("teal", (0, 128, 128)), ("sky blue", (135, 206, 235)),
    ("blue", (30, 90, 220)), ("navy", (0, 0, 128)), ("purple", (128, 0, 128)),
    ("pink", (255, 105, 180)), ("brown", (139, 69, 19)), ("beige", (222, 205, 170)),
)  # fmt: skip
_LAND_COVER = {
    "water": ("blue", "navy", "teal", "sky blue"),
    "vegetation": ("green", "olive"),
    "built-up": ("gray", "silver", "black", "red", "maroon", "purple", "pink"),
    "bare soil": ("brown", "beige", "orange", "yellow"),
    "cloud or snow": ("white",),
}


def _color_name(hex_color: str) -> str:
    rgb = tuple(int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return min(
        _NAMED_COLORS,
        key=lambda named: sum((a - b) ** 2 for a, b in zip(rgb, named[1], strict=True)),
    )[0]


# -- domain shapes ------------------------------------------------------------------------


@dataclass
class _Context:
    features: Sequence[ImageFeatures]
    draw: _Draw
    frame_interval_s: float

    @property
    def first(self) -> ImageFeatures:
        return self.features[0]

    def color_names(self, features: ImageFeatures | None = None) -> list[str]:
        names: list[str] = []
        for hex_color in (features or self.first).dominant_colors:
            name = _color_name(hex_color)
            if name not in names:
                names.append(name)
        return names

    def person(self) -> str:
        return f"{self.draw.choice(_FIRST_NAMES)} {self.draw.choice(_LAST_NAMES)}"

    def company(self) -> str:
        return f"{self.draw.choice(_COMPANY_WORDS)} {self.draw.choice(_COMPANY_KINDS)}"

    def address(self) -> dict[str, str]:
        city, state, country = self.draw.choice(_CITIES)
        return {
            "street": f"{self.draw.integer(1, 9999)} {self.draw.choice(_STREETS)}",
            "city": city,
            "state": state,
            "postal_code": self.draw.digits(5),
            "country": country,
        }

    def email(self, name: str, company: str) -> str:
        local = ".".join(name.lower().split()[:2])
        domain = "".join(ch for ch in company.lower().split()[0] if ch.isalnum())
        return f"{local}@{domain}.example.com"

    def phone(self) -> str:
        return f"+1-{self.draw.integer(200, 989)}-555-{self.draw.digits(4)}"

    def sentence(self, low: int = 6, high: int = 12) -> str:
        words = [self.draw.choice(_WORDS) for _ in range(self.draw.integer(low, high))]
        return " ".join(words).capitalize() + "."


def _describe(ctx: _Context, features: ImageFeatures) -> tuple[str, list[str]]:
    """A caption and tags read off the measured features (brightness, shape, colors)."""
    names = ctx.color_names(features)
    if features.aspect_ratio > 1.15:
        orientation = "landscape"
    elif features.aspect_ratio < 0.87:
        orientation = "portrait"
    else:
        orientation = "square"
    if features.brightness < 0.3:
        light = "dark"
    elif features.brightness < 0.6:
        light = "softly lit"
    else:
        light = "bright"
    documentish = (
        features.brightness > 0.7
        and names[:1] in (["white"], ["silver"])
        and features.edge_density > _DOCUMENT_EDGE_DENSITY
    )
    if documentish:
        subject = "page with printed text and ruled sections"
    elif features.color_fractions[0] > _PLAIN_FRACTION:
        subject = "plain surface"
    elif features.color_fractions[0] > _BACKDROP_FRACTION:
        subject = "object on a plain backdrop"
    else:
        subject = "scene"
    palette = " and ".join(names[:2])
    caption = f"A {light} {orientation} {subject} dominated by {palette} tones."
    tags = [light, orientation, *names, "document" if documentish else "photo"]
    return caption, tags


def _invoice(ctx: _Context) -> dict[str, Any]:
    d = ctx.draw
    issue = d.day()
    terms = d.choice((15, 30, 45, 60))
    currency = d.choice(_CURRENCIES)
    items: list[dict[str, Any]] = []
    subtotal = 0
    for description in d.sample(_SERVICES, min(1 + d.below(4) + len(ctx.features), 8)):
        quantity = d.integer(1, 12)
        unit = d.integer(5_00, 450_00)
        subtotal += quantity * unit
        items.append(
            {
                "description": description,
                "quantity": quantity,
                "unit_price": _money(unit),
                "amount": _money(quantity * unit),
            }
        )
    tax_bp = d.choice((0, 500, 800, 1000, 1900, 2000))
    tax = _percent_of(subtotal, tax_bp)
    vendor, customer, contact = ctx.company(), ctx.company(), ctx.person()
    return {
        "invoice_id": f"INV-{issue.year}-{d.digits(5)}",
        "issue_date": issue.isoformat(),
        "due_date": (issue + timedelta(days=terms)).isoformat(),
        "payment_terms": f"Net {terms}",
        "purchase_order": f"PO-{d.digits(6)}",
        "vendor_name": vendor,
        "vendor_address": ctx.address(),
        "vendor_email": ctx.email("billing", vendor),
        "customer_name": customer,
        "customer_contact": contact,
        "customer_email": ctx.email(contact, customer),
        "customer_address": ctx.address(),
        "line_items": items,
        "currency": currency,
        "subtotal": _money(subtotal),
        "tax_rate": tax_bp / 100,
        "tax": _money(tax),
        "total": _money(subtotal + tax),
        "amount_due": _money(subtotal + tax),
        "page_count": len(ctx.features),
        "notes": "Thank you for your business.",
    }


def _receipt(ctx: _Context) -> dict[str, Any]:
    d = ctx.draw
    items: list[dict[str, Any]] = []
    subtotal = 0
    for name in d.sample(_GROCERIES, d.integer(2, 7)):
        quantity = d.integer(1, 3)
        unit = d.integer(99, 24_99)
        subtotal += quantity * unit
        items.append(
            {
                "name": name,
                "quantity": quantity,
                "unit_price": _money(unit),
                "total": _money(quantity * unit),
            }
        )
    tax = _percent_of(subtotal, d.choice((0, 600, 825, 1000)))
    tip = d.choice((0, 0, _percent_of(subtotal, 1500), _percent_of(subtotal, 1800)))
    method = d.choice(("VISA", "Mastercard", "AMEX", "Cash", "Debit"))
    merchant = f"{d.choice(_COMPANY_WORDS)} Market"
    return {
        "merchant_name": merchant,
        "merchant_address": ctx.address(),
        "merchant_phone": ctx.phone(),
        "receipt_number": d.digits(8),
        "transaction_date": d.day().isoformat(),
        "transaction_time": f"{d.integer(7, 21):02d}:{d.integer(0, 59):02d}",
        "items": items,
        "currency": d.choice(_CURRENCIES),
        "subtotal": _money(subtotal),
        "tax": _money(tax),
        "tip": _money(tip),
        "total": _money(subtotal + tax + tip),
        "payment_method": method,
        "card_last4": None if method == "Cash" else d.digits(4),
    }


def _resume(ctx: _Context) -> dict[str, Any]:
    d = ctx.draw
    name = ctx.person()
    graduation = d.day(date(2005, 6, 1), 5000)
    experience: list[dict[str, Any]] = []
    end: date | None = None
    for _ in range(d.integer(1, 3)):
        finish = end or d.day(date(2022, 1, 1), 700)
        start = finish - timedelta(days=d.integer(300, 1800))
        experience.append(
            {
                "company": ctx.company(),
                "title": d.choice(_JOB_TITLES),
                "start_date": start.isoformat(),
                "end_date": None if end is None else finish.isoformat(),
                "description": ctx.sentence(),
            }
        )
        end = start - timedelta(days=d.integer(10, 90))
    return {
        "contact_info": {
            "full_name": name,
            "email": ctx.email(name, "mail"),
            "phone": ctx.phone(),
            "location": ctx.address()["city"],
            "linkedin": f"https://www.linkedin.com/in/{name.lower().replace(' ', '-')}",
        },
        "summary": ctx.sentence(10, 18),
        "work_experience": experience,
        "education": [
            {
                "institution": f"{d.choice(_COMPANY_WORDS)} {d.choice(_UNIVERSITIES)}",
                "degree": d.choice(_DEGREES),
                "field_of_study": d.choice(_FIELDS),
                "graduation_date": graduation.isoformat(),
            }
        ],
        "skills": d.sample(_SKILLS, d.integer(3, 6)),
        "certifications": [],
    }


def _utility_bill(ctx: _Context) -> dict[str, Any]:
    d = ctx.draw
    kind, unit, rate_cents = d.choice(
        (("electricity", "kWh", 17), ("natural gas", "therms", 130), ("water", "gal", 1))
    )
    period_end = d.day()
    period_start = period_end - timedelta(days=d.integer(28, 31))
    quantity = d.integer(80, 1200) if unit != "gal" else d.integer(1500, 9000)
    usage_cents = quantity * rate_cents
    lines = [
        (f"{kind.capitalize()} usage", usage_cents),
        ("Basic service charge", d.integer(5_00, 25_00)),
        ("Taxes and fees", _percent_of(usage_cents, 500)),
    ]
    charges = [{"description": text, "amount": _money(cents)} for text, cents in lines]
    current = sum(cents for _text, cents in lines)
    previous = d.integer(0, 300_00)
    return {
        "provider_name": f"{d.choice(_COMPANY_WORDS)} Utilities",
        "utility_type": kind,
        "account_number": d.digits(10),
        "customer_name": ctx.person(),
        "service_address": ctx.address(),
        "statement_date": (period_end + timedelta(days=2)).isoformat(),
        "billing_period": {
            "start_date": period_start.isoformat(),
            "end_date": period_end.isoformat(),
        },
        "due_date": (period_end + timedelta(days=23)).isoformat(),
        "meter_number": f"M-{d.digits(7)}",
        "usage": {"quantity": quantity, "unit": unit},
        "charges": charges,
        "currency": "USD",
        "previous_balance": _money(previous),
        "payments_received": _money(previous),
        "current_charges": _money(current),
        "total_amount_due": _money(current),
    }


def _page_lines(ctx: _Context, features: ImageFeatures) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    count = ctx.draw.integer(3, 8)
    line_height = max(1, features.height // (count + 2))
    for i in range(count):
        lines.append(
            {
                "text": ctx.sentence(),
                "bbox": {
                    "x": features.width // 10,
                    "y": line_height * (i + 1),
                    "width": max(1, features.width * 8 // 10),
                    "height": max(1, line_height * 2 // 3),
                },
                "confidence": round(0.8 + ctx.draw.below(200) / 1000, 3),
            }
        )
    return lines


def _ocr(ctx: _Context) -> dict[str, Any]:
    pages: list[dict[str, Any]] = []
    for number, features in enumerate(ctx.features, start=1):
        lines = _page_lines(ctx, features)
        pages.append(
            {
                "page_number": number,
                "width": features.width,
                "height": features.height,
                "text": "\n".join(line["text"] for line in lines),
                "lines": lines,
            }
        )
    return {"text": "\n\n".join(p["text"] for p in pages), "language": "en", "pages": pages}


def _markdown(ctx: _Context) -> dict[str, Any]:
    pages: list[dict[str, Any]] = []
    for number, _features in enumerate(ctx.features, start=1):
        rows = "\n".join(
            f"| {ctx.draw.choice(_SERVICES)} | {ctx.draw.integer(1, 9)} |"
            for _ in range(ctx.draw.integer(2, 4))
        )
        body = (
            f"## {ctx.sentence(2, 4)[:-1]}\n\n{ctx.sentence()} {ctx.sentence()}\n\n"
            f"| Item | Qty |\n| --- | --- |\n{rows}\n"
        )
        pages.append({"page_number": number, "markdown": body})
    title = ctx.sentence(2, 5)[:-1]
    markdown = f"# {title}\n\n" + "\n".join(p["markdown"] for p in pages)
    return {"title": title, "markdown": markdown, "pages": pages}


def _generative(ctx: _Context) -> dict[str, Any]:
    pages: list[dict[str, Any]] = [
        {"page_number": n, "text": " ".join(ctx.sentence() for _ in range(3))}
        for n in range(1, len(ctx.features) + 1)
    ]
    return {
        "title": ctx.sentence(2, 5)[:-1],
        "document_type": ctx.draw.choice(("report", "letter", "memo", "form", "brochure")),
        "summary": ctx.sentence(12, 20),
        "key_points": [ctx.sentence() for _ in range(ctx.draw.integer(2, 4))],
        "entities": [
            {"type": "organization", "value": ctx.company()},
            {"type": "person", "value": ctx.person()},
            {"type": "date", "value": ctx.draw.day().isoformat()},
        ],
        "text": "\n\n".join(p["text"] for p in pages),
        "pages": pages,
    }


def _presentation(ctx: _Context) -> dict[str, Any]:
    pages: list[dict[str, Any]] = []
    for number, _features in enumerate(ctx.features, start=1):
        title = ctx.sentence(2, 4)[:-1]
        bullets = [ctx.sentence(4, 8) for _ in range(ctx.draw.integer(2, 5))]
        pages.append(
            {
                "page_number": number,
                "title": title,
                "bullets": bullets,
                "markdown": f"## {title}\n\n" + "\n".join(f"- {b}" for b in bullets),
                "speaker_notes": ctx.sentence(),
            }
        )
    return {
        "title": pages[0]["title"],
        "slide_count": len(pages),
        "markdown": "\n\n".join(p["markdown"] for p in pages),
        "pages": pages,
    }


def _caption(ctx: _Context) -> dict[str, Any]:
    caption, tags = _describe(ctx, ctx.first)
    return {"caption": caption, "tags": tags, "colors": ctx.color_names()}


def _product(ctx: _Context) -> tuple[str, str, str, str]:
    category, kinds = ctx.draw.choice(_PRODUCT_KINDS)
    color = next((n for n in ctx.color_names() if n not in ("white", "silver")), "white")
    return category, ctx.draw.choice(kinds), color, ctx.draw.choice(_BRANDS)


def _product_catalog(ctx: _Context) -> dict[str, Any]:
    category, kind, color, brand = _product(ctx)
    return {
        "product_name": f"{brand} {color} {kind.lower()}",
        "brand": brand,
        "category": category,
        "description": f"A {color} {kind.lower()} by {brand}. {ctx.sentence()}",
        "color": color,
        "sku": f"{brand[:3].upper()}-{ctx.draw.digits(6)}",
        "price": _money(ctx.draw.integer(4_99, 249_99)),
        "currency": ctx.draw.choice(_CURRENCIES),
        "attributes": {
            "material": ctx.draw.choice(("cotton", "ceramic", "aluminum", "plastic", "glass")),
            "size": ctx.draw.choice(("S", "M", "L", "one size")),
        },
        "image_count": len(ctx.features),
    }


def _ecommerce_caption(ctx: _Context) -> dict[str, Any]:
    category, kind, color, brand = _product(ctx)
    caption, tags = _describe(ctx, ctx.first)
    return {
        "title": f"{brand} {kind} in {color.title()}",
        "description": f"{caption} Shown: a {color} {kind.lower()} from {brand}.",
        "category": category,
        "color": color,
        "tags": [kind.lower(), color, *tags],
        "rating": round(3.5 + ctx.draw.below(16) / 10, 1),
    }


def _remote_sensing(ctx: _Context) -> dict[str, Any]:
    shares: dict[str, float] = {}
    for hex_color, fraction in zip(
        ctx.first.dominant_colors, ctx.first.color_fractions, strict=True
    ):
        name = _color_name(hex_color)
        cover = next((k for k, names in _LAND_COVER.items() if name in names), "other")
        shares[cover] = shares.get(cover, 0.0) + fraction
    total = sum(shares.values()) or 1.0
    land_cover = [
        {"class": cover, "fraction": round(share / total, 4)}
        for cover, share in sorted(shares.items(), key=lambda item: -item[1])
    ]
    scene = land_cover[0]["class"]
    objects = [
        {"label": label, "count": ctx.draw.integer(0, 40)}
        for label in ctx.draw.sample(("building", "road", "vehicle", "field", "tree"), 3)
    ]
    return {
        "description": f"Overhead view dominated by {scene}.",
        "scene_type": scene,
        "land_cover": land_cover,
        "cloud_cover": round(shares.get("cloud or snow", 0.0) / total, 4),
        "objects": objects,
        "ground_sample_distance_m": round(0.3 + ctx.draw.below(300) / 100, 2),
        "tags": [c["class"] for c in land_cover],
    }


def _frames(ctx: _Context) -> list[dict[str, Any]]:
    """One segment per frame; a scene change where the dHash jumps from the previous frame."""
    segments = []
    previous: ImageFeatures | None = None
    for index, features in enumerate(ctx.features):
        start = round(index * ctx.frame_interval_s, 3)
        changed = (
            previous is None
            or _hamming(previous.difference_hash, features.difference_hash) > _SCENE_CHANGE_BITS
        )
        segments.append(
            {
                "frame_index": index,
                "start_time_s": start,
                "end_time_s": round(start + ctx.frame_interval_s, 3),
                "scene_change": changed,
            }
        )
        previous = features
    return segments


def _tv_news(ctx: _Context) -> dict[str, Any]:
    topics = ctx.draw.sample(_NEWS_TOPICS, 2)
    anchor = ctx.person()
    segments = []
    for segment, features in zip(_frames(ctx), ctx.features, strict=True):
        caption, _tags = _describe(ctx, features)
        segment |= {
            "headline": ctx.sentence(4, 7)[:-1].title(),
            "ticker_text": ctx.sentence(),
            "speaker": anchor if segment["scene_change"] else None,
            "scene_description": caption,
        }
        segments.append(segment)
    return {
        "channel": f"{ctx.draw.choice(_COMPANY_WORDS)} News",
        "topics": topics,
        "summary": f"A {topics[0]} report presented by {anchor}. {ctx.sentence()}",
        "segments": segments,
    }


def _video_caption(ctx: _Context) -> dict[str, Any]:
    segments = []
    for segment, features in zip(_frames(ctx), ctx.features, strict=True):
        segments.append(segment | {"caption": _describe(ctx, features)[0]})
    changes = sum(s["scene_change"] for s in segments)
    return {
        "caption": f"{segments[0]['caption'][:-1]}, over {len(segments)} frames "
        f"and {changes} scene(s).",
        "duration_s": segments[-1]["end_time_s"],
        "segments": segments,
    }


def _commentary(ctx: _Context) -> dict[str, Any]:
    segments = []
    for segment, features in zip(_frames(ctx), ctx.features, strict=True):
        caption, _tags = _describe(ctx, features)
        opener = "Cut to" if segment["scene_change"] else "Still on"
        segments.append(
            segment
            | {
                "commentary": f"{opener} {caption[0].lower()}{caption[1:]} {ctx.sentence()}",
                "tone": ctx.draw.choice(("neutral", "excited", "calm", "analytical")),
            }
        )
    return {"summary": ctx.sentence(10, 16), "segments": segments}


_DOMAIN_SHAPES: dict[str, Callable[[_Context], dict[str, Any]]] = {
    "aerospace.remote-sensing": _remote_sensing,
    "document.ocr": _ocr,
    "document.generative": _generative,
    "document.invoice": _invoice,
    "document.markdown": _markdown,
    "document.presentation": _presentation,
    "document.receipt": _receipt,
    "document.resume": _resume,
    "document.utility-bill": _utility_bill,
    "image.caption": _caption,
    "retail.product-catalog": _product_catalog,
    "retail.ecommerce-product-caption": _ecommerce_caption,
    "video.tv-news": _tv_news,
    "video.caption": _video_caption,
    "video.commentary": _commentary,
}
assert set(_DOMAIN_SHAPES) == set(DOMAINS)


# -- JSON Schema following ----------------------------------------------------------------


def _respond_to_schema(schema: Any, draw: _Draw, metadata: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(schema, Mapping):
        raise PredictionFailed("config.json_schema must be a JSON object")
    validator_class = validators.validator_for(schema)
    try:
        validator_class.check_schema(dict(schema))
    except jsonschema_exceptions.SchemaError as exc:
        raise PredictionFailed(
            f"config.json_schema is not a valid JSON Schema: {exc.message}"
        ) from exc
    instance = _SchemaFiller(schema, draw).fill(schema, "value", 0)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    valid = validator.is_valid(instance)
    metadata["schema_valid"] = valid
    if not isinstance(instance, dict):
        # Wrapping a bare value would break the schema; structured output is an object.
        raise PredictionFailed("config.json_schema must describe an object")
    with_metadata = {**instance, SANDBOX_KEY: metadata}
    if not valid or validator.is_valid(with_metadata):
        return with_metadata
    return instance  # additionalProperties: false; the schema wins over the metadata


def instance_for_schema(schema: Mapping[str, Any], *, seed: bytes = b"") -> Any:
    """A value that validates against ``schema`` (best effort: ``pattern`` is not honoured)."""
    return _SchemaFiller(schema, _Draw(seed, "json_schema")).fill(schema, "value", 0)


class _Unfillable(Exception):
    """A subschema no value satisfies (``false``); an optional property is then left out."""


class _SchemaFiller:
    def __init__(self, root: Mapping[str, Any], draw: _Draw) -> None:
        self.root = root
        self.draw = draw

    def fill(self, schema: Any, key: str, depth: int) -> Any:
        if schema is False:
            raise _Unfillable(key)
        if schema is True or not isinstance(schema, Mapping):
            return f"{key}"
        schema = self.resolve(schema, depth)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.draw.choice(list(schema["enum"]))
        for keyword in ("anyOf", "oneOf"):
            if schema.get(keyword):
                rest = {k: v for k, v in schema.items() if k != keyword}
                return self.fill(self.merge([rest, schema[keyword][0]], depth), key, depth + 1)
        kind = self.type_of(schema)
        if kind == "object":
            return self.fill_object(schema, depth)
        if kind == "array":
            return self.fill_array(schema, key, depth)
        if kind == "string":
            return self.fill_string(schema, key)
        if kind == "integer":
            return self.fill_integer(schema)
        if kind == "number":
            return self.fill_number(schema)
        if kind == "boolean":
            return self.draw.below(2) == 1
        return None

    def resolve(self, schema: Mapping[str, Any], depth: int) -> Mapping[str, Any]:
        """Follow ``$ref`` and fold ``allOf`` into one schema."""
        for _ in range(_SCHEMA_MAX_DEPTH * 4):
            if "$ref" in schema:
                target = self.lookup(schema["$ref"])
                rest = {k: v for k, v in schema.items() if k != "$ref"}
                schema = self.merge([target, rest], depth) if rest else target
            elif schema.get("allOf"):
                rest = {k: v for k, v in schema.items() if k != "allOf"}
                schema = self.merge([rest, *schema["allOf"]], depth)
            else:
                return schema
        raise PredictionFailed("config.json_schema has a $ref/allOf cycle")

    def lookup(self, ref: str) -> Mapping[str, Any]:
        if not ref.startswith("#"):
            raise PredictionFailed(f"config.json_schema $ref {ref!r} is not local (#/...)")
        node: Any = self.root
        for token in filter(None, unquote(ref[1:]).split("/")):
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                raise PredictionFailed(f"config.json_schema $ref {ref!r} points nowhere")
        if node is True:
            return {}
        if not isinstance(node, Mapping):
            raise PredictionFailed(f"config.json_schema $ref {ref!r} is not a schema")
        return node

    def merge(self, schemas: Sequence[Any], depth: int) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for part in schemas:
            if not isinstance(part, Mapping):
                continue
            part = self.resolve(part, depth)
            for name, value in part.items():
                if name == "properties" and isinstance(value, Mapping):
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif name == "required" and isinstance(value, list):
                    merged["required"] = [*merged.get("required", []), *value]
                else:
                    merged[name] = value
        return merged

    @staticmethod
    def type_of(schema: Mapping[str, Any]) -> str:
        declared = schema.get("type")
        if isinstance(declared, list):
            concrete = [t for t in declared if t != "null"]
            return str(concrete[0]) if concrete else "null"
        if isinstance(declared, str):
            return declared
        if any(k in schema for k in ("properties", "required", "additionalProperties")):
            return "object"
        if any(k in schema for k in ("items", "prefixItems", "minItems", "maxItems")):
            return "array"
        if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "multipleOf")):
            return "number"
        return "string"

    def fill_object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties: Mapping[str, Any] = schema.get("properties") or {}
        required = list(dict.fromkeys(schema.get("required") or []))
        # Past the depth limit only required properties: recursive schemas must end.
        names = list(dict.fromkeys([*required, *properties]))
        if depth >= _SCHEMA_MAX_DEPTH:
            names = required
        result: dict[str, Any] = {}
        for name in names:
            subschema = properties.get(name, schema.get("additionalProperties", True))
            try:
                result[name] = self.fill(subschema, name, depth + 1)
            except _Unfillable:
                if name in required:
                    raise
        return result

    def fill_array(self, schema: Mapping[str, Any], key: str, depth: int) -> list[Any]:
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", True)
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, schema.get("additionalItems", True)
        minimum = int(schema.get("minItems", 0))
        count = max(minimum, len(prefix), 0 if depth >= _SCHEMA_MAX_DEPTH else 1)
        if "maxItems" in schema:
            count = min(count, int(schema["maxItems"]))
        result: list[Any] = []
        for i in range(count):
            subschema = prefix[i] if i < len(prefix) else items
            value = self.fill(subschema, f"{key} {i + 1}", depth + 1)
            if schema.get("uniqueItems"):
                for _ in range(8):  # redraw duplicates (enum/boolean picks can collide)
                    if value not in result:
                        break
                    value = self.fill(subschema, f"{key} {i + 1}", depth + 1)
            result.append(value)
        return result

    def fill_string(self, schema: Mapping[str, Any], key: str) -> str:
        d = self.draw
        fmt = schema.get("format")
        if fmt == "date":
            return d.day().isoformat()
        if fmt == "date-time":
            return f"{d.day().isoformat()}T{d.integer(0, 23):02d}:{d.integer(0, 59):02d}:00Z"
        if fmt == "time":
            return f"{d.integer(0, 23):02d}:{d.integer(0, 59):02d}:00Z"
        if fmt in ("email", "idn-email"):
            return f"{d.choice(_FIRST_NAMES).lower()}.{d.digits(3)}@example.com"
        if fmt in ("uri", "url", "iri", "uri-reference", "iri-reference"):
            return f"https://example.com/{d.digits(6)}"
        if fmt == "uuid":
            return str(uuid.UUID(bytes=d.raw(16), version=4))
        if fmt in ("hostname", "idn-hostname"):
            return f"host{d.digits(3)}.example.com"
        if fmt == "ipv4":
            return f"192.0.2.{d.integer(1, 254)}"
        if fmt == "ipv6":
            return f"2001:db8::{d.integer(1, 0xFFFF):x}"
        text = f"{key.replace('_', ' ')} {d.choice(_WORDS)}"
        minimum, maximum = int(schema.get("minLength", 0)), schema.get("maxLength")
        if len(text) < minimum:
            text = text + "x" * (minimum - len(text))
        if maximum is not None:
            text = text[: int(maximum)]
        return text

    def bounds(self, schema: Mapping[str, Any], step: float) -> tuple[float, float]:
        low = _as_number(schema.get("minimum"))
        high = _as_number(schema.get("maximum"))
        exclusive_low = schema.get("exclusiveMinimum")
        exclusive_high = schema.get("exclusiveMaximum")
        # Draft 4 spells exclusivity as a boolean beside minimum/maximum; later drafts as numbers.
        if exclusive_low is True and low is not None:
            low += step
        elif (bound := _as_number(exclusive_low)) is not None:
            low = bound + step if low is None else max(low, bound + step)
        if exclusive_high is True and high is not None:
            high -= step
        elif (bound := _as_number(exclusive_high)) is not None:
            high = bound - step if high is None else min(high, bound - step)
        if low is None and high is None:
            return 1, 100
        if low is None:
            assert high is not None
            return (1 if high >= 1 else high - 100), high
        if high is None:
            return low, low + 100
        return low, high

    def fill_integer(self, schema: Mapping[str, Any]) -> int:
        low, high = self.bounds(schema, 1)
        low_i, high_i = int(-(-low // 1)), int(high // 1)
        multiple = schema.get("multipleOf")
        if isinstance(multiple, int) and multiple > 0:
            first = -(-low_i // multiple)
            last = high_i // multiple
            return multiple * (first + self.draw.below(max(1, last - first + 1)))
        return self.draw.integer(low_i, max(low_i, high_i))

    def fill_number(self, schema: Mapping[str, Any]) -> float:
        low, high = self.bounds(schema, 0.01)
        multiple = schema.get("multipleOf")
        if isinstance(multiple, int | float) and multiple > 0:
            first = -(-low // multiple)
            return float(first * multiple)
        low_cents, high_cents = int(-(-low * 100 // 1)), int(high * 100 // 1)
        if low_cents > high_cents:
            return float((low + high) / 2)
        return _money(self.draw.integer(low_cents, high_cents))


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value
