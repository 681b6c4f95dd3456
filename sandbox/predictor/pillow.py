"""The ``Predictor`` protocol the sandbox server calls, and ``PillowPredictor``, its deterministic
offline implementation: same pixels in, same response out; different pixels, a different one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

from sandbox.errors import PredictionFailed
from sandbox.predictor.draw import Draw
from sandbox.predictor.features import DEFAULT_MAX_PIXELS, extract_features
from sandbox.predictor.schema_filler import fill_schema, schema_validator
from sandbox.predictor.shape_context import ShapeContext
from sandbox.predictor.shapes import shape_for

__all__ = ["SANDBOX_KEY", "PillowPredictor", "Predictor"]

# Where the response says it came from the sandbox; no domain field starts with "_".
SANDBOX_KEY = "_sandbox"
DEFAULT_FRAME_INTERVAL_S = 1.0


class Predictor(Protocol):
    """What the sandbox server calls to turn decoded images into a prediction ``response``."""

    def predict(
        self, images: Sequence[bytes], domain: str, config: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """The ``response`` JSON; raises ``PredictionFailed`` for bad images or config."""
        ...


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
        # Seeded by the pixels alone, never the clock or `random`: the same images always
        # get the same values, whatever their encoding.
        seed = hashlib.sha256("|".join(f.pixel_sha256 for f in features).encode()).digest()
        metadata: dict[str, Any] = {
            "predictor": self.name,
            "version": self.version,
            "domain": domain,
            "images": [f.to_json() for f in features],
        }
        schema = (config or {}).get("json_schema")
        if schema:
            return _respond_to_schema(schema, Draw(seed, "json_schema"), metadata)
        shape = shape_for(domain)
        response = shape(ShapeContext(features, Draw(seed, domain), self.frame_interval_s))
        response[SANDBOX_KEY] = metadata
        return response


def _respond_to_schema(schema: Any, draw: Draw, metadata: dict[str, Any]) -> dict[str, Any]:
    validator = schema_validator(schema)
    instance = fill_schema(schema, draw)
    valid = validator.is_valid(instance)
    metadata["schema_valid"] = valid
    if not isinstance(instance, dict):
        # Wrapping a bare value would break the schema; structured output is an object.
        raise PredictionFailed("config.json_schema must describe an object")
    with_metadata = {**instance, SANDBOX_KEY: metadata}
    if not valid or validator.is_valid(with_metadata):
        return with_metadata
    return instance  # additionalProperties: false; the schema wins over the metadata
