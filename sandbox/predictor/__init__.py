"""The sandbox's stand-in for the model: responses drawn deterministically from the pixels,
shaped like the requested domain's output or like ``config["json_schema"]``.
"""

from sandbox.predictor.decode import decode_image_value
from sandbox.predictor.features import DEFAULT_MAX_PIXELS, ImageFeatures, extract_features
from sandbox.predictor.pillow import SANDBOX_KEY, PillowPredictor, Predictor

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SANDBOX_KEY",
    "ImageFeatures",
    "PillowPredictor",
    "Predictor",
    "decode_image_value",
    "extract_features",
]
