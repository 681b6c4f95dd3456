"""Shapes of the ``video.*`` domains: each image is one frame, a scene change where it jumps."""

from __future__ import annotations

from typing import Any

from sandbox.predictor.features import ImageFeatures, hamming_distance
from sandbox.predictor.shape_context import ShapeContext, describe
from sandbox.predictor.vocabulary import COMPANY_WORDS, NEWS_TOPICS

__all__ = ["commentary", "tv_news", "video_caption"]

_SCENE_CHANGE_BITS = 12  # dHash bits that differ between frames of different shots


def _frames(ctx: ShapeContext) -> list[dict[str, Any]]:
    """One segment per frame; a scene change where the dHash jumps from the previous frame."""
    segments = []
    previous: ImageFeatures | None = None
    for index, features in enumerate(ctx.features):
        start = round(index * ctx.frame_interval_s, 3)
        changed = (
            previous is None
            or hamming_distance(previous.difference_hash, features.difference_hash)
            > _SCENE_CHANGE_BITS
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


def tv_news(ctx: ShapeContext) -> dict[str, Any]:
    topics = ctx.draw.sample(NEWS_TOPICS, 2)
    anchor = ctx.person()
    segments = []
    for segment, features in zip(_frames(ctx), ctx.features, strict=True):
        caption, _tags = describe(ctx, features)
        segment |= {
            "headline": ctx.sentence(4, 7)[:-1].title(),
            "ticker_text": ctx.sentence(),
            "speaker": anchor if segment["scene_change"] else None,
            "scene_description": caption,
        }
        segments.append(segment)
    return {
        "channel": f"{ctx.draw.choice(COMPANY_WORDS)} News",
        "topics": topics,
        "summary": f"A {topics[0]} report presented by {anchor}. {ctx.sentence()}",
        "segments": segments,
    }


def video_caption(ctx: ShapeContext) -> dict[str, Any]:
    segments = []
    for segment, features in zip(_frames(ctx), ctx.features, strict=True):
        segments.append(segment | {"caption": describe(ctx, features)[0]})
    changes = sum(s["scene_change"] for s in segments)
    return {
        "caption": f"{segments[0]['caption'][:-1]}, over {len(segments)} frames "
        f"and {changes} scene(s).",
        "duration_s": segments[-1]["end_time_s"],
        "segments": segments,
    }


def commentary(ctx: ShapeContext) -> dict[str, Any]:
    segments = []
    for segment, features in zip(_frames(ctx), ctx.features, strict=True):
        caption, _tags = describe(ctx, features)
        opener = "Cut to" if segment["scene_change"] else "Still on"
        segments.append(
            segment
            | {
                "commentary": f"{opener} {caption[0].lower()}{caption[1:]} {ctx.sentence()}",
                "tone": ctx.draw.choice(("neutral", "excited", "calm", "analytical")),
            }
        )
    return {"summary": ctx.sentence(10, 16), "segments": segments}
