from __future__ import annotations

import base64
import io
import os
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from submit import errors
from submit.images import (
    SNIFF_BYTES,
    FileImage,
    InlineImage,
    UrlImage,
    encode_data_url,
    expand_image_inputs,
    sniff_image_mime,
)

FORMATS = {
    "PNG": ("png", "image/png"),
    "JPEG": ("jpg", "image/jpeg"),
    "WEBP": ("webp", "image/webp"),
    "GIF": ("gif", "image/gif"),
    "BMP": ("bmp", "image/bmp"),
    "TIFF": ("tiff", "image/tiff"),
}


def image_bytes(fmt: str = "PNG", color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), color).save(buffer, format=fmt)
    return buffer.getvalue()


def write_image(path: Path, fmt: str = "PNG", color: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(fmt, color))
    return path


def decode_data_url(value: str) -> tuple[str, bytes]:
    header, _, payload = value.partition(",")
    assert header.startswith("data:") and header.endswith(";base64")
    return header[5 : -len(";base64")], base64.b64decode(payload, validate=True)


# -- sniffing and encoding ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_is_sniffed_from_a_real_file(tmp_path: Path, fmt: str) -> None:
    suffix, mime = FORMATS[fmt]
    path = write_image(tmp_path / f"picture.{suffix}", fmt)

    assert sniff_image_mime(path.read_bytes()[:SNIFF_BYTES]) == mime
    (source,) = expand_image_inputs([path])
    assert isinstance(source, FileImage)
    assert source.mime == mime
    assert decode_data_url(source.to_request_value()) == (mime, path.read_bytes())


def test_tiff_big_endian_is_sniffed() -> None:
    assert sniff_image_mime(b"MM\x00*\x00\x00\x00\x08" + bytes(24)) == "image/tiff"


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"hello world, this is text",
        b"BM is how this text file starts, not a bitmap",
        b"RIFF\x24\x00\x00\x00WAVEfmt ",
        b"GIF88a",
        b"\x89PNX\r\n\x1a\n",
        b"%PDF-1.7",
    ],
)
def test_non_images_are_not_sniffed(head: bytes) -> None:
    assert sniff_image_mime(head) is None


def test_the_sniffed_type_comes_from_content_not_the_name(tmp_path: Path) -> None:
    path = write_image(tmp_path / "actually-a-jpeg.png", "JPEG")
    (source,) = expand_image_inputs([path])
    assert decode_data_url(source.to_request_value())[0] == "image/jpeg"


def test_encode_data_url_known_answer() -> None:
    assert encode_data_url(b"abc", "image/png") == "data:image/png;base64,YWJj"


# -- explicit paths -----------------------------------------------------------------------


def test_an_explicit_non_image_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not an image")
    with pytest.raises(errors.UnsupportedImage) as info:
        list(expand_image_inputs([path]))
    assert str(path) in str(info.value)
    assert info.value.source == str(path)
    assert "6e 6f 74 20" in str(info.value)  # the first bytes, to help spot what it is


def test_an_empty_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(errors.UnsupportedImage, match="empty"):
        list(expand_image_inputs([path]))


def test_a_missing_path_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "missing.png"
    with pytest.raises(errors.ImageNotFound) as info:
        list(expand_image_inputs([str(path)]))
    assert str(path) in str(info.value)
    assert isinstance(info.value, errors.ImageError)
    assert isinstance(info.value, errors.SubmitError)


def test_a_fifo_named_explicitly_is_unreadable_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(errors.ImageUnreadable, match="not a regular file") as info:
        list(expand_image_inputs([fifo]))
    assert str(fifo) in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = write_image(tmp_path / "secret.png")
    path.chmod(0)
    with pytest.raises(errors.ImageUnreadable) as info:
        list(expand_image_inputs([path]))
    assert str(path) in str(info.value)


# -- directories --------------------------------------------------------------------------


def test_directories_expand_recursively_sorted_skipping_non_images(tmp_path: Path) -> None:
    root = tmp_path / "scans"
    write_image(root / "b.png")
    write_image(root / "a.jpg", "JPEG")
    write_image(root / "a" / "z.gif", "GIF")
    write_image(root / "a" / "deeper" / "x.bmp", "BMP")
    write_image(root / "c" / "no-suffix", "WEBP")
    (root / "notes.txt").write_text("skip me")
    (root / "c" / "README.md").write_text("# skip me too")
    (root / "c" / "fake.png").write_text("a text file with an image name")
    os.mkfifo(root / "c" / "pipe.png")
    (root / "dangling.png").symlink_to(root / "gone.png")

    labels = [source.label for source in expand_image_inputs([root])]

    assert labels == [
        str(root / "a" / "deeper" / "x.bmp"),
        str(root / "a" / "z.gif"),
        str(root / "a.jpg"),
        str(root / "b.png"),
        str(root / "c" / "no-suffix"),
    ]


def test_a_directory_without_images_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing to see")
    with pytest.raises(errors.ImageError, match="no images") as info:
        list(expand_image_inputs([tmp_path]))
    assert str(tmp_path) in str(info.value)


def test_inputs_keep_their_order_around_directories(tmp_path: Path) -> None:
    first = write_image(tmp_path / "z-first.png")
    write_image(tmp_path / "dir" / "2.png")
    write_image(tmp_path / "dir" / "1.png")
    url = "https://example.com/last.jpg"

    labels = [s.label for s in expand_image_inputs([first, tmp_path / "dir", url])]

    assert labels == [
        str(first),
        str(tmp_path / "dir" / "1.png"),
        str(tmp_path / "dir" / "2.png"),
        url,
    ]


def test_an_oversized_image_in_a_directory_is_an_error_not_skipped(tmp_path: Path) -> None:
    write_image(tmp_path / "small.png")
    big = tmp_path / "big.png"
    big.write_bytes(image_bytes() + bytes(5000))
    with pytest.raises(errors.ImageTooLarge) as info:
        list(expand_image_inputs([tmp_path], max_bytes=4000))
    assert str(big) in str(info.value)


# -- laziness -----------------------------------------------------------------------------


def test_expansion_reads_no_more_than_the_sniffed_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(30):
        write_image(tmp_path / f"{i:02d}.png", color=(i * 8, 0, 0))
    reads: list[int] = []
    real_open = Path.open

    def counting_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        file = real_open(self, *args, **kwargs)
        real_read = file.read

        def read(size: int = -1) -> bytes:
            data: bytes = real_read(size)
            reads.append(len(data))
            return data

        file.read = read
        return file

    monkeypatch.setattr(Path, "open", counting_open)
    sources = list(expand_image_inputs([tmp_path]))

    assert len(sources) == 30
    assert reads and max(reads) <= SNIFF_BYTES
    sources[0].to_request_value()
    assert max(reads) > SNIFF_BYTES  # the whole file, only now


def test_file_contents_are_read_at_encode_time_not_expansion(tmp_path: Path) -> None:
    path = write_image(tmp_path / "changing.png", color=(0, 0, 0))
    (source,) = expand_image_inputs([path])
    path.write_bytes(image_bytes(color=(255, 255, 255)))

    assert decode_data_url(source.to_request_value())[1] == image_bytes(color=(255, 255, 255))


def test_a_file_deleted_after_expansion_fails_clearly_at_encode(tmp_path: Path) -> None:
    keep = write_image(tmp_path / "keep.png")
    gone = write_image(tmp_path / "gone.png")
    sources = list(expand_image_inputs([keep, gone]))
    gone.unlink()

    assert sources[0].to_request_value().startswith("data:image/png;base64,")
    with pytest.raises(errors.ImageNotFound) as info:
        sources[1].to_request_value()
    assert str(gone) in str(info.value)


def test_a_file_that_stopped_being_an_image_fails_at_encode(tmp_path: Path) -> None:
    path = write_image(tmp_path / "image.png")
    (source,) = expand_image_inputs([path])
    path.write_text("overwritten with text")
    with pytest.raises(errors.UnsupportedImage, match=re.escape(str(path))):
        source.to_request_value()


def test_expansion_is_a_lazy_generator(tmp_path: Path) -> None:
    good = write_image(tmp_path / "good.png")
    iterator = expand_image_inputs([good, tmp_path / "missing.png"])  # no error yet
    assert next(iterator).label == str(good)
    with pytest.raises(errors.ImageNotFound):
        next(iterator)


# -- the size cap -------------------------------------------------------------------------


def test_an_oversized_file_names_the_file_and_the_sizes(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(image_bytes() + bytes(3 * 1024 * 1024))
    size = path.stat().st_size
    with pytest.raises(errors.ImageTooLarge) as info:
        list(expand_image_inputs([path], max_bytes=2 * 1024 * 1024))
    message = str(info.value)
    assert str(path) in message
    assert f"{size} bytes" in message
    assert "3.0 MiB" in message and "2.0 MiB limit" in message
    assert (info.value.size, info.value.limit) == (size, 2 * 1024 * 1024)


def test_a_file_at_the_cap_is_accepted(tmp_path: Path) -> None:
    path = write_image(tmp_path / "exact.png")
    (source,) = expand_image_inputs([path], max_bytes=path.stat().st_size)
    assert source.to_request_value()


def test_a_file_that_grew_past_the_cap_fails_at_encode(tmp_path: Path) -> None:
    path = write_image(tmp_path / "growing.png")
    (source,) = expand_image_inputs([path], max_bytes=1000)
    path.write_bytes(image_bytes() + bytes(2000))
    with pytest.raises(errors.ImageTooLarge, match=re.escape(str(path))):
        source.to_request_value()


def test_oversized_bytes_are_refused(tmp_path: Path) -> None:
    data = image_bytes() + bytes(100)
    with pytest.raises(errors.ImageTooLarge, match="<bytes>"):
        list(expand_image_inputs([data], max_bytes=len(data) - 1))


# -- URLs, bytes, PIL images --------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["https://example.com/a.png?sig=x&y=%20", "http://127.0.0.1:8000/img", "HTTPS://EXAMPLE.COM/b"],
)
def test_urls_pass_through_untouched(url: str) -> None:
    (source,) = expand_image_inputs([url])
    assert isinstance(source, UrlImage)
    assert source.label == url
    assert source.to_request_value() == url


def test_other_schemes_are_treated_as_paths() -> None:
    with pytest.raises(errors.ImageNotFound, match=re.escape("ftp://example.com/a.png")):
        list(expand_image_inputs(["ftp://example.com/a.png"]))


def test_bytes_are_sniffed_and_encoded() -> None:
    data = image_bytes("GIF")
    (source,) = expand_image_inputs([data])
    assert isinstance(source, InlineImage)
    assert source.label == "<bytes>"
    assert decode_data_url(source.to_request_value()) == ("image/gif", data)


def test_non_image_bytes_are_an_error_naming_the_input() -> None:
    with pytest.raises(errors.UnsupportedImage, match=r"<bytes> \(input #1\)") as info:
        list(expand_image_inputs([image_bytes(), b"plain text"]))
    assert info.value.source == "<bytes>"


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "CMYK", "YCbCr"])
def test_pil_images_are_encoded_as_png(mode: str) -> None:
    image = Image.new("RGB", (10, 6), (10, 120, 240)).convert(mode)
    (source,) = expand_image_inputs([image])
    mime, data = decode_data_url(source.to_request_value())
    assert mime == "image/png"
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == "PNG"
    assert decoded.size == (10, 6)
    expected = image.convert("RGB").getpixel((3, 3))
    assert decoded.convert("RGB").getpixel((3, 3)) == expected


def test_a_pil_image_is_a_snapshot_taken_at_expansion() -> None:
    image = Image.new("RGB", (4, 4), (0, 0, 0))
    (source,) = expand_image_inputs([image])
    image.paste((255, 255, 255), (0, 0, 4, 4))
    _, data = decode_data_url(source.to_request_value())
    assert Image.open(io.BytesIO(data)).getpixel((0, 0)) == (0, 0, 0)


def test_a_lone_input_is_not_iterated_character_by_character(tmp_path: Path) -> None:
    path = write_image(tmp_path / "one.png")
    assert [s.label for s in expand_image_inputs(str(path))] == [str(path)]
    assert [s.label for s in expand_image_inputs(image_bytes())] == ["<bytes>"]


def test_an_unsupported_input_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="input #0 is a int"):
        list(expand_image_inputs([42]))  # type: ignore[list-item]


def test_sources_are_frozen_and_hold_no_file_content(tmp_path: Path) -> None:
    path = write_image(tmp_path / "x.png")
    (source,) = expand_image_inputs([path])
    assert isinstance(source, FileImage)
    assert set(vars(source)) == {"label", "path", "mime", "max_bytes"}
    with pytest.raises(AttributeError):
        source.label = "changed"  # type: ignore[misc]


# -- the error tree (API side, used by the client) ----------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, errors.AuthenticationError),
        (429, errors.RateLimited),
        (500, errors.ServerError),
        (503, errors.ServerError),
        (400, errors.BadRequest),
        (422, errors.BadRequest),
    ],
)
def test_api_errors_map_by_status(status: int, kind: type[errors.ApiError]) -> None:
    error = errors.api_error_for_status(status, "nope")
    assert type(error) is kind
    assert error.status_code == status
    assert error.message == "nope"
    assert str(status) in str(error)
    assert isinstance(error, errors.SubmitError)


def test_transport_errors_have_no_status() -> None:
    error = errors.TransportError("connection refused")
    assert error.status_code is None
    assert str(error) == "connection refused"
