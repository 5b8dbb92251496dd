"""Image decoding: formats, modes, EXIF, limits, hashing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from face3d_core import images
from face3d_core.errors import InvalidImageError
from face3d_core.images import decode_image, load_image, sha256_hex


def _encode(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _gradient_rgb(h: int = 40, w: int = 60) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 4 % 256, yy * 6 % 256, (xx + yy) % 256], axis=2).astype(np.uint8)


def test_png_rgb_roundtrip_is_exact():
    arr = _gradient_rgb()
    out = decode_image(_encode(Image.fromarray(arr)))
    assert out.dtype == np.uint8 and out.shape == (40, 60, 3)
    np.testing.assert_array_equal(out, arr)


def test_jpeg_decodes_close_to_source():
    arr = _gradient_rgb()
    out = decode_image(_encode(Image.fromarray(arr), "JPEG", quality=95))
    assert out.shape == arr.shape
    assert np.abs(out.astype(int) - arr.astype(int)).mean() < 6


def test_grayscale_becomes_three_equal_channels():
    gray = (np.arange(40 * 60).reshape(40, 60) % 256).astype(np.uint8)
    out = decode_image(_encode(Image.fromarray(gray, "L")))
    assert out.shape == (40, 60, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_rgba_is_composited_on_white():
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:, :10, 3] = 255  # left half opaque red, right half fully transparent
    out = decode_image(_encode(Image.fromarray(rgba, "RGBA")))
    np.testing.assert_array_equal(out[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(out[0, 15], [255, 255, 255])


def test_palette_png():
    img = Image.fromarray(_gradient_rgb()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    out = decode_image(_encode(img))
    np.testing.assert_array_equal(out, np.asarray(img.convert("RGB")))


def test_16bit_png_keeps_relative_levels():
    ramp = (np.linspace(0, 65535, 64).astype(np.uint16)[None, :]).repeat(20, axis=0)
    img16 = Image.fromarray(ramp)
    assert img16.mode.startswith("I;16")
    data = _encode(img16)
    out = decode_image(data)
    assert out.dtype == np.uint8
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255
    assert np.all(np.diff(out[0, :, 0].astype(int)) >= 0)


def test_exif_orientation_is_applied():
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, :20] = 255  # left half white in storage
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW for display
    out = decode_image(_encode(Image.fromarray(arr), "JPEG", exif=exif, quality=95))
    assert out.shape == (40, 20, 3)  # upright: portrait
    assert out[:20].mean() > 200 and out[20:].mean() < 50  # the white half is now on top


def test_exif_photo_from_shared(faces_dir):
    upright = load_image(faces_dir / "pillow_hopper_128.jpg")
    rotated = load_image(faces_dir / "pillow_hopper_exif_orientation6.jpg")
    assert rotated.shape == upright.shape
    assert np.abs(rotated.astype(int) - upright.astype(int)).mean() < 25  # same upright portrait


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (b"", "empty"),
        (b"GIF89a" + b"\0" * 100, "GIF"),
        (b"%PDF-1.4 hello", "PDF"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "SVG"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WebP"),
        (bytes(range(256)) * 10, "not a JPEG or PNG"),
    ],
)
def test_rejects_other_formats_with_a_clear_message(data, phrase):
    with pytest.raises(InvalidImageError, match=phrase):
        decode_image(data)


def test_truncated_files_are_reported_as_damaged():
    png = _encode(Image.fromarray(_gradient_rgb(200, 200)))
    jpg = _encode(Image.fromarray(_gradient_rgb(200, 200)), "JPEG")
    for data in (png[: len(png) // 2], jpg[: len(jpg) // 3]):
        with pytest.raises(InvalidImageError, match="damaged or incomplete"):
            decode_image(data)


def test_too_small_and_too_many_pixels(monkeypatch):
    with pytest.raises(InvalidImageError, match="too small"):
        decode_image(_encode(Image.new("RGB", (15, 100))))
    monkeypatch.setattr(images, "MAX_PIXELS", 50 * 50)
    with pytest.raises(InvalidImageError, match="megapixels"):
        decode_image(_encode(Image.new("RGB", (60, 60))))


def test_png_bomb_is_rejected_before_decoding():
    # A valid PNG header declaring 50000 x 50000 pixels; no pixel is ever allocated.
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 1000))
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")
    with pytest.raises(InvalidImageError, match="megapixels"):
        decode_image(data)


def test_file_size_limit(monkeypatch, tmp_path):
    monkeypatch.setattr(images, "MAX_FILE_BYTES", 1000)
    noise = np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)
    data = _encode(Image.fromarray(noise))
    assert len(data) > 1000
    with pytest.raises(InvalidImageError, match="too large"):
        decode_image(data)
    path = tmp_path / "big.png"
    path.write_bytes(data)
    with pytest.raises(InvalidImageError, match="too large"):
        load_image(path)


def test_missing_file_is_an_invalid_image(tmp_path):
    with pytest.raises(InvalidImageError, match="Cannot read"):
        load_image(tmp_path / "nope.png")


def test_cmyk_jpeg_becomes_rgb():
    img = Image.fromarray(_gradient_rgb()).convert("CMYK")
    out = decode_image(_encode(img, "JPEG", quality=95))
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8


def test_sha256_is_content_hash():
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_every_shared_photo_decodes(faces_dir):
    for path in sorted(faces_dir.iterdir()):
        if path.suffix.lower() in {".jpg", ".jpeg", ".png"}:
            img = load_image(path)
            assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8, path.name


# -- cost bounds checked from the file's structure, before any pixel is decoded -----------------


def _never_decode(monkeypatch) -> None:
    """Make any pixel decoding fail the test (the checks below must come first)."""
    from PIL import ImageFile

    def refuse(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_progressive_jpeg_with_too_many_scans_is_rejected_before_decoding(monkeypatch):
    from tests.harness.hostile_files import progressive_scan_bomb

    bomb = progressive_scan_bomb()  # 6000 x 6000, 15,000 scans, 1 MB: 31 s of CPU to decode
    assert images.count_jpeg_scans(bomb) > images.MAX_JPEG_SCANS
    _never_decode(monkeypatch)
    with pytest.raises(InvalidImageError, match="too many progressive scans"):
        decode_image(bomb)


def test_jpeg_scans_are_counted_by_walking_the_segments():
    noise = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    baseline = _encode(Image.fromarray(noise), "JPEG", quality=95)
    progressive = _encode(Image.fromarray(noise), "JPEG", quality=95, progressive=True)
    assert baseline.count(b"\xff\x00") > 10  # entropy data full of stuffed 0xFF bytes
    assert images.count_jpeg_scans(baseline) == 1
    assert images.count_jpeg_scans(progressive) == 10  # libjpeg's script for YCbCr
    # restart markers inside the entropy data are not segments
    restarts = _encode(Image.fromarray(noise), "JPEG", quality=95, progressive=True, restart_marker_blocks=1)
    assert sum(restarts.count(bytes([0xFF, m])) for m in range(0xD0, 0xD8)) > 10
    assert images.count_jpeg_scans(restarts) == 10
    # fill bytes (0xFF 0xFF ...) before a marker are allowed
    eoi = progressive.rindex(b"\xff\xd9")
    filled = progressive[:eoi] + b"\xff\xff\xff" + progressive[eoi:]
    assert images.count_jpeg_scans(filled) == 10
    # a second image after the first (MPO, or junk appended) is not counted
    assert images.count_jpeg_scans(progressive + baseline) == 10
    for data in (restarts, filled, progressive + baseline):
        assert decode_image(data).shape == (64, 80, 3)
    # a damaged structure stops the count; the decoder then says what is wrong
    assert images.count_jpeg_scans(progressive[:500]) <= 10
    with pytest.raises(InvalidImageError, match="damaged"):
        decode_image(progressive[:500])


def test_images_longer_than_eight_times_their_width_are_rejected_from_the_header(monkeypatch):
    assert decode_image(_encode(Image.new("RGB", (128, 16)))).shape == (16, 128, 3)  # 8:1 is fine
    assert decode_image(_encode(Image.new("RGB", (16, 128)))).shape == (128, 16, 3)
    _never_decode(monkeypatch)
    from tests.harness.hostile_files import flat_image

    for data, size in (
        (flat_image(65000, 600, "JPEG"), "65000x600"),
        (flat_image(20000, 16), "20000x16"),
        (_encode(Image.new("RGB", (16, 130))), "16x130"),
    ):
        with pytest.raises(InvalidImageError, match="long and narrow") as info:
            decode_image(data)
        assert size in info.value.user_message


def test_jpegs_of_many_segments_or_fill_bytes_cost_the_check_nothing(monkeypatch):
    photo = _encode(Image.fromarray(_gradient_rgb()), "JPEG", quality=95)
    # 100,000 empty comment segments after SOI: refused (no decoder needs that many)
    many = photo[:2] + b"\xff\xfe\x00\x02" * 100_000 + photo[2:]
    with pytest.raises(InvalidImageError, match="too many segments"):
        decode_image(many)
    # 5 MB of fill bytes before EOI (allowed by the standard): walked by one search, then decoded
    eoi = photo.rindex(b"\xff\xd9")
    filled = photo[:eoi] + b"\xff" * 5_000_000 + photo[eoi:]
    assert images.count_jpeg_scans(filled) == 1
    assert decode_image(filled).shape == (40, 60, 3)


def test_16bit_levels_are_exactly_rounded_and_decoding_stays_lean():
    levels = np.random.default_rng(3).integers(0, 65536, (300, 200), dtype=np.uint16)
    levels[0, :4] = [0, 128, 129, 65535]  # around the rounding boundary of 257
    out = decode_image(_encode(Image.fromarray(levels)))
    expected = np.rint(levels.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)
    np.testing.assert_array_equal(out[..., 0], expected)
    assert list(out[0, :4, 0]) == [0, 0, 1, 255]
