"""Image reading: every way a file can silently change the pixels is an error naming the file."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from msnlan.data.images import read_image, write_image
from msnlan.errors import DataError


def _rgb(h=12, w=10, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png_bytes(array, **kw):
    buf = io.BytesIO()
    Image.fromarray(array, **kw).save(buf, format="PNG")
    return buf.getvalue()


def _png16_rgb(h=6, w=5):
    """A 48-bit RGB PNG built by hand (Pillow opens these as 8-bit 'RGB', dropping the low byte)."""
    arr = (np.arange(h * w * 3).reshape(h, w, 3) * 997 % 65536).astype(">u2")
    raw = b"".join(b"\x00" + arr[i].tobytes() for i in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_round_trip_rgb_and_gray(tmp_path):
    rgb, gray = _rgb(), _rgb()[..., 0].copy()
    write_image(tmp_path / "a.png", rgb)
    write_image(tmp_path / "b.png", gray)
    assert np.array_equal(read_image(tmp_path / "a.png"), rgb)
    out = read_image(tmp_path / "b.png")
    assert out.shape == gray.shape and out.dtype == np.uint8 and np.array_equal(out, gray)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]  # no temp files left


@pytest.mark.parametrize("fmt,ext", [("BMP", "bmp"), ("TIFF", "tif")])
def test_lossless_formats(tmp_path, fmt, ext):
    rgb = _rgb()
    Image.fromarray(rgb).save(tmp_path / f"x.{ext}", format=fmt)
    assert np.array_equal(read_image(tmp_path / f"x.{ext}"), rgb)


def test_truncated_png_is_rejected(tmp_path):
    data = _png_bytes(_rgb(64, 64))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.png"):
        read_image(path)


def test_corrupt_png_is_rejected(tmp_path):
    data = bytearray(_png_bytes(_rgb(64, 64)))
    idat = data.index(b"IDAT")
    data[idat + 40] ^= 0xFF  # damage the compressed stream; the chunk CRC no longer matches
    path = tmp_path / "bad.png"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="bad.png"):
        read_image(path)


def test_not_an_image(tmp_path):
    path = tmp_path / "text.png"
    path.write_text("hello")
    with pytest.raises(DataError, match="text.png.*not a readable image"):
        read_image(path)
    with pytest.raises(DataError, match="does not exist"):
        read_image(tmp_path / "missing.png")


def test_16_bit_images_are_rejected(tmp_path):
    gray16 = tmp_path / "gray16.png"
    Image.fromarray(np.full((4, 4), 4000, np.uint16)).save(gray16)
    with pytest.raises(DataError, match="gray16.png.*more than 8 bits"):
        read_image(gray16)
    rgb48 = tmp_path / "rgb48.png"
    rgb48.write_bytes(_png16_rgb())
    assert Image.open(rgb48).mode == "RGB"  # what makes this case dangerous
    with pytest.raises(DataError, match="rgb48.png.*more than 8 bits"):
        read_image(rgb48)


def test_palette_is_rejected(tmp_path):
    path = tmp_path / "pal.png"
    Image.fromarray(_rgb()).convert("P").save(path)
    with pytest.raises(DataError, match="pal.png.*palette"):
        read_image(path)


def test_alpha_rejected_unless_dropped(tmp_path):
    rgba = np.concatenate([_rgb(), np.full((12, 10, 1), 7, np.uint8)], axis=2)
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    with pytest.raises(DataError, match="alpha.png.*alpha"):
        read_image(path)
    assert np.array_equal(read_image(path, drop_alpha=True), rgba[..., :3])
    la = tmp_path / "la.png"
    Image.fromarray(rgba[..., [0, 3]], "LA").save(la)
    with pytest.raises(DataError, match="la.png"):
        read_image(la)
    assert np.array_equal(read_image(la, drop_alpha=True), rgba[..., 0])


@pytest.mark.parametrize("mode,fmt", [("CMYK", "JPEG"), ("F", "TIFF"), ("1", "PNG")])
def test_other_modes_are_rejected(tmp_path, mode, fmt):
    path = tmp_path / f"img.{fmt.lower()}"
    Image.fromarray(_rgb()).convert(mode).save(path, format=fmt)
    with pytest.raises(DataError, match=f"img.{fmt.lower()}"):
        read_image(path)


def test_multi_page_tiff_is_rejected(tmp_path):
    path = tmp_path / "pages.tif"
    frames = [Image.fromarray(_rgb(seed=i)) for i in range(2)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(DataError, match="pages.tif.*2 frames"):
        read_image(path)


def test_write_image_checks_the_array(tmp_path):
    with pytest.raises(DataError, match="uint8"):
        write_image(tmp_path / "f.png", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(DataError, match="shape"):
        write_image(tmp_path / "f.png", np.zeros((4, 4, 4), np.uint8))
    assert not list(tmp_path.iterdir())
