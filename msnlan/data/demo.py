"""The embedded demo data: small SR datasets cut from the images that ship inside scikit-image.

They let the whole workflow (prepare, train, evaluate, report) run anywhere without downloads.
Splits are disjoint by source photograph: no photograph of DemoTrain or DemoVal appears in a
benchmark set, and the twelve benchmark images come from twelve photographs. Each benchmark set
holds six small crops (about 120 x 96 px) with fine structure (fur, text, coins, grass, gravel,
lattice towers), so that its bootstrap intervals rest on more than two images while evaluation
stays cheap: the MSNLAB's whole-image attention costs the square of an image's pixels, so six
120 x 96 crops cost less than the two 192 x 192 crops the sets held before. DemoVal, validated
three times in every training job, holds four such crops for the same reason (a fifth of the
cost of its former two 192 x 192 crops). Most of scikit-image's bundled photographs are
grayscale, so are most benchmark images (the one-channel path). Only
files bundled in the scikit-image wheel are read (never its download registry).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..io_utils import write_json_atomic, write_text_atomic
from .images import read_image, write_image

DEMO_SETS = ("DemoTrain", "DemoVal", "DemoA", "DemoB")


@dataclass(frozen=True)
class DemoImage:
    name: str  # file stem in the demo set
    source: str  # file in skimage/data
    skimage_function: str  # the skimage.data function documenting it (origin, license)
    box: tuple[int, int, int, int] | None  # crop (left, top, right, bottom) in source pixels; None = whole


#: the demo sets; benchmark crops are 120 x 96 px (chelsea_eye 130 x 100: not a multiple of 12, so
#: the crop to a multiple of the scale is exercised)
DEMO_IMAGES: dict[str, tuple[DemoImage, ...]] = {
    "DemoTrain": (
        DemoImage("astronaut", "astronaut.png", "astronaut", None),
        DemoImage("motorcycle_left", "motorcycle_left.png", "stereo_motorcycle", (100, 50, 612, 450)),
        DemoImage("motorcycle_right", "motorcycle_right.png", "stereo_motorcycle", (100, 50, 612, 450)),
        DemoImage("hubble_deep_field", "hubble_deep_field.jpg", "hubble_deep_field", (256, 200, 768, 712)),
        DemoImage("retina", "retina.jpg", "retina", (450, 450, 962, 962)),
    ),
    "DemoVal": (
        DemoImage("coffee_spoon", "coffee.png", "coffee", (300, 220, 420, 316)),
        DemoImage("coffee_wood", "coffee.png", "coffee", (470, 60, 590, 156)),
        DemoImage("ihc_gland", "ihc.png", "immunohistochemistry", (160, 160, 280, 256)),
        DemoImage("ihc_stroma", "ihc.png", "immunohistochemistry", (260, 300, 380, 396)),
    ),
    "DemoA": (
        DemoImage("chelsea_eye", "chelsea.png", "chelsea", (110, 65, 240, 165)),
        DemoImage("camera_operator", "camera.png", "camera", (210, 90, 330, 186)),  # grayscale
        DemoImage("coins", "coins.png", "coins", (130, 100, 250, 196)),  # grayscale
        DemoImage("grass", "grass.png", "grass", (200, 200, 320, 296)),  # grayscale
        DemoImage("page_text", "page.png", "page", (40, 40, 160, 136)),  # grayscale
        DemoImage("clock_face", "clock_motion.png", "clock", (153, 105, 273, 201)),  # grayscale
    ),
    "DemoB": (
        DemoImage("rocket_tower", "rocket.jpg", "rocket", (420, 310, 540, 406)),
        DemoImage("brick_wall", "brick.png", "brick", (64, 64, 184, 160)),  # grayscale
        DemoImage("gravel", "gravel.png", "gravel", (200, 200, 320, 296)),  # grayscale
        DemoImage("moon_crater", "moon.png", "moon", (281, 80, 401, 176)),  # grayscale
        DemoImage("text_strokes", "text.png", "text", (100, 40, 220, 136)),  # grayscale
        DemoImage("cell", "cell.png", "cell", (365, 326, 485, 422)),  # grayscale
    ),
}

DEMO_RECORD = "demo_data.json"


def read_demo_record(out_dir: str | os.PathLike) -> dict | None:
    """The record `write_demo_datasets` wrote into `out_dir` (None if there is none)."""
    from ..results.files import read_json

    path = Path(out_dir) / DEMO_RECORD
    if not path.is_file():
        return None
    record = read_json(path)
    if not isinstance(record.get("sets"), dict):
        raise DataError(f"{path}: key 'sets' must map set names to image lists")
    return record


def skimage_data_dir() -> Path:
    """The folder of images bundled with the installed scikit-image."""
    import skimage

    return Path(skimage.__file__).resolve().parent / "data"


def _describe(function: str) -> str:
    import skimage.data

    doc = getattr(skimage.data, function, None).__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _crop(array, box, source: Path):
    if box is None:
        return array
    left, top, right, bottom = box
    h, w = array.shape[:2]
    if not (0 <= left < right <= w and 0 <= top < bottom <= h):
        raise DataError(f"{source}: crop box {box} lies outside the {w}x{h} image")
    return array[top:bottom, left:right]


def write_demo_datasets(out_dir: str | os.PathLike) -> dict:
    """Write DemoTrain, DemoVal, DemoA, DemoB as ``out_dir/<Set>/HR/<name>.png``.

    Also writes ``out_dir/demo_data.json`` and ``out_dir/README.txt`` (last) recording each image's
    source file, crop box, size and checksum. Returns the JSON record.
    """
    import skimage

    out_dir = Path(out_dir)
    data_dir = skimage_data_dir()
    (out_dir / DEMO_RECORD).unlink(missing_ok=True)  # complete only when rewritten
    record: dict = {"skimage_version": skimage.__version__, "skimage_data_dir": str(data_dir),
                    "layout": "<Set>/HR/<name>.png (LR generated by msnlan prepare/evaluate)", "sets": {}}
    lines = ["MSNLAN demo data: small SR datasets cut from images bundled with scikit-image "
             f"{skimage.__version__}.", "Crop boxes are (left, top, right, bottom) in source pixels.", ""]
    for set_name in DEMO_SETS:
        entries = []
        lines.append(f"{set_name}:")
        for img in DEMO_IMAGES[set_name]:
            source = data_dir / img.source
            if not source.is_file():
                raise DataError(f"{source}: scikit-image's bundled image is missing (reinstall scikit-image)")
            array = _crop(read_image(source), img.box, source)
            target = out_dir / set_name / "HR" / f"{img.name}.png"
            write_image(target, array)
            entry = {
                "name": img.name,
                "file": f"{set_name}/HR/{img.name}.png",
                "source_file": f"skimage/data/{img.source}",
                "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
                "skimage_function": f"skimage.data.{img.skimage_function}",
                "description": _describe(img.skimage_function),
                "crop_box": list(img.box) if img.box else None,
                "width": int(array.shape[1]),
                "height": int(array.shape[0]),
                "channels": 1 if array.ndim == 2 else 3,
                "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
            }
            entries.append(entry)
            crop = f"crop {tuple(img.box)}" if img.box else "whole image"
            kind = "grayscale" if array.ndim == 2 else "RGB"
            lines.append(f"  {img.name}.png  {entry['width']}x{entry['height']} {kind}  from {entry['source_file']} "
                         f"({crop}); {entry['skimage_function']}: {entry['description']}")
        record["sets"][set_name] = entries
        lines.append("")
    lines.append("Origins and licenses: see the docstrings of the skimage.data functions named above.")
    write_text_atomic(out_dir / "README.txt", "\n".join(lines) + "\n")
    write_json_atomic(out_dir / DEMO_RECORD, record)  # last: marks the demo data complete
    return record
