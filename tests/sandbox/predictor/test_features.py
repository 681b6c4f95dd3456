from __future__ import annotations

from PIL import Image

from sandbox.predictor.features import extract_features
from tests.sandbox.predictor.images import encode, halves, solid


def test_features_measure_the_image() -> None:
    features = extract_features(halves((0, 0, 0), (255, 255, 255), size=(128, 64)))
    assert (features.width, features.height) == (128, 64)
    assert (features.format, features.mode) == ("PNG", "RGB")
    assert features.aspect_ratio == 2.0
    assert features.brightness == 0.5


def test_brightness_spans_black_to_white() -> None:
    assert extract_features(solid((0, 0, 0))).brightness == 0.0
    assert extract_features(solid((255, 255, 255))).brightness == 1.0
    assert 0.2 < extract_features(solid((90, 90, 90))).brightness < 0.5


def test_transparency_is_seen_over_white() -> None:
    clear = encode(Image.new("RGBA", (16, 16), (0, 0, 0, 0)))
    assert extract_features(clear).brightness == 1.0


def test_dominant_colors_are_hex_most_frequent_first() -> None:
    image = Image.new("RGB", (40, 40), (255, 0, 0))
    image.paste((0, 0, 255), (0, 30, 40, 40))
    features = extract_features(encode(image))
    assert features.dominant_colors == ("#ff0000", "#0000ff")
    assert features.color_fractions == (0.75, 0.25)


def test_near_identical_shades_count_as_one_color() -> None:
    image = Image.new("RGB", (40, 40), (255, 255, 255))
    image.paste((250, 250, 251), (0, 0, 40, 10))
    image.paste((20, 40, 90), (0, 30, 40, 40))
    features = extract_features(encode(image))
    assert len(features.dominant_colors) == 2
    assert features.color_fractions[0] == 0.75


def test_perceptual_hashes_known_answers() -> None:
    dark_left = extract_features(halves((0, 0, 0), (255, 255, 255)))
    light_left = extract_features(halves((255, 255, 255), (0, 0, 0)))
    assert dark_left.average_hash == "0f0f0f0f0f0f0f0f"
    assert light_left.average_hash == "f0f0f0f0f0f0f0f0"
    assert dark_left.difference_hash == "0000000000000000"
    assert light_left.difference_hash == "1818181818181818"


def test_jpeg_features_use_the_full_size_even_when_decoded_small() -> None:
    features = extract_features(solid((10, 200, 10), size=(1600, 900), fmt="JPEG"))
    assert (features.width, features.height, features.format) == (1600, 900, "JPEG")


def test_high_bit_depth_grayscale_is_handled() -> None:
    image = Image.new("I;16", (16, 16), 65535)
    assert extract_features(encode(image)).brightness > 0.95
