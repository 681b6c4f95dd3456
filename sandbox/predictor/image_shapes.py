"""Shapes of the single-picture domains (``image.caption``, ``retail.*``,
``aerospace.remote-sensing``): read off the first image's colors, light and shape.
"""

from __future__ import annotations

from typing import Any

from sandbox.predictor.draw import money
from sandbox.predictor.shape_context import ShapeContext, describe
from sandbox.predictor.vocabulary import BRANDS, CURRENCIES, LAND_COVER, PRODUCT_KINDS, color_name

__all__ = ["ecommerce_product_caption", "image_caption", "product_catalog", "remote_sensing"]


def image_caption(ctx: ShapeContext) -> dict[str, Any]:
    caption, tags = describe(ctx, ctx.first)
    return {"caption": caption, "tags": tags, "colors": ctx.color_names()}


def _product(ctx: ShapeContext) -> tuple[str, str, str, str]:
    category, kinds = ctx.draw.choice(PRODUCT_KINDS)
    color = next((n for n in ctx.color_names() if n not in ("white", "silver")), "white")
    return category, ctx.draw.choice(kinds), color, ctx.draw.choice(BRANDS)


def product_catalog(ctx: ShapeContext) -> dict[str, Any]:
    category, kind, color, brand = _product(ctx)
    return {
        "product_name": f"{brand} {color} {kind.lower()}",
        "brand": brand,
        "category": category,
        "description": f"A {color} {kind.lower()} by {brand}. {ctx.sentence()}",
        "color": color,
        "sku": f"{brand[:3].upper()}-{ctx.draw.digits(6)}",
        "price": money(ctx.draw.integer(4_99, 249_99)),
        "currency": ctx.draw.choice(CURRENCIES),
        "attributes": {
            "material": ctx.draw.choice(("cotton", "ceramic", "aluminum", "plastic", "glass")),
            "size": ctx.draw.choice(("S", "M", "L", "one size")),
        },
        "image_count": len(ctx.features),
    }


def ecommerce_product_caption(ctx: ShapeContext) -> dict[str, Any]:
    category, kind, color, brand = _product(ctx)
    caption, tags = describe(ctx, ctx.first)
    return {
        "title": f"{brand} {kind} in {color.title()}",
        "description": f"{caption} Shown: a {color} {kind.lower()} from {brand}.",
        "category": category,
        "color": color,
        "tags": [kind.lower(), color, *tags],
        "rating": round(3.5 + ctx.draw.below(16) / 10, 1),
    }


def remote_sensing(ctx: ShapeContext) -> dict[str, Any]:
    shares: dict[str, float] = {}
    for hex_color, fraction in zip(
        ctx.first.dominant_colors, ctx.first.color_fractions, strict=True
    ):
        name = color_name(hex_color)
        cover = next((k for k, names in LAND_COVER.items() if name in names), "other")
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
