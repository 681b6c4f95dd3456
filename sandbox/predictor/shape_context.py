"""What every domain shape reads from: the measured features, the draw, and made-up people,
companies and addresses; plus the caption read off one image's features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.predictor.draw import Draw
from sandbox.predictor.features import ImageFeatures
from sandbox.predictor.vocabulary import (
    CITIES,
    COMPANY_KINDS,
    COMPANY_WORDS,
    FIRST_NAMES,
    LAST_NAMES,
    STREETS,
    WORDS,
    color_name,
)

__all__ = ["ShapeContext", "describe"]

# Pages of text are edgier than photos or product shots (samples: ~0.21-0.29 vs ~0.13).
_DOCUMENT_EDGE_DENSITY = 0.18
_PLAIN_FRACTION = 0.97  # one color everywhere: nothing in the picture
_BACKDROP_FRACTION = 0.6  # one color over this share reads as a studio backdrop


@dataclass
class ShapeContext:
    """One prediction's features and draw; the helpers draw in call order, so order matters."""

    features: Sequence[ImageFeatures]
    draw: Draw
    frame_interval_s: float

    @property
    def first(self) -> ImageFeatures:
        return self.features[0]

    def color_names(self, features: ImageFeatures | None = None) -> list[str]:
        names: list[str] = []
        for hex_color in (features or self.first).dominant_colors:
            name = color_name(hex_color)
            if name not in names:
                names.append(name)
        return names

    def person(self) -> str:
        return f"{self.draw.choice(FIRST_NAMES)} {self.draw.choice(LAST_NAMES)}"

    def company(self) -> str:
        return f"{self.draw.choice(COMPANY_WORDS)} {self.draw.choice(COMPANY_KINDS)}"

    def address(self) -> dict[str, str]:
        city, state, country = self.draw.choice(CITIES)
        return {
            "street": f"{self.draw.integer(1, 9999)} {self.draw.choice(STREETS)}",
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
        words = [self.draw.choice(WORDS) for _ in range(self.draw.integer(low, high))]
        return " ".join(words).capitalize() + "."


def describe(ctx: ShapeContext, features: ImageFeatures) -> tuple[str, list[str]]:
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
