from __future__ import annotations

from pathlib import Path

from PIL import Image

from sandbox.predictor import PillowPredictor
from sandbox.samples import SAMPLE_DOMAINS, generate_samples, sample_paths
from submit.images import sniff_image_mime
from tests.sandbox.predictor.responses import DOMAIN_FIELDS


def test_the_shipped_samples_are_small_images() -> None:
    paths = sample_paths()
    assert [p.name for p in paths] == sorted(SAMPLE_DOMAINS)
    for path in paths:
        data = path.read_bytes()
        assert len(data) < 40_000, path
        assert sniff_image_mime(data[:32]) in ("image/png", "image/jpeg")
    with Image.open(next(p for p in paths if p.name == "receipt.png")) as receipt:
        assert receipt.height > 2 * receipt.width
    with Image.open(next(p for p in paths if p.name == "photo.jpg")) as photo:
        assert photo.format == "JPEG"


def test_the_samples_predict_with_their_demo_domains() -> None:
    predictor = PillowPredictor()
    for path in sample_paths():
        response = predictor.predict([path.read_bytes()], SAMPLE_DOMAINS[path.name], None)
        assert DOMAIN_FIELDS[SAMPLE_DOMAINS[path.name]] <= set(response)
    tags = {
        path.name: predictor.predict([path.read_bytes()], "image.caption", None)["tags"]
        for path in sample_paths()
    }
    assert "document" in tags["invoice.png"] and "document" in tags["receipt.png"]
    assert "photo" in tags["photo.jpg"] and "photo" in tags["product.png"]


def test_generate_samples_redraws_the_shipped_set(tmp_path: Path) -> None:
    generated = generate_samples(tmp_path / "out")
    assert [p.name for p in generated] == [p.name for p in sample_paths()]
    for new, shipped in zip(generated, sample_paths(), strict=True):
        with Image.open(new) as a, Image.open(shipped) as b:
            assert (a.size, a.format) == (b.size, b.format)
        assert len(new.read_bytes()) < 40_000
