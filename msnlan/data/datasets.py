"""Benchmark and training datasets: layouts, LR generation, manifest and decoded-array cache.

Accepted layouts of a dataset folder ``P``:

* ``ours``:    ``P/HR/*.png`` (any image type), optional ``P/LR/x{s}/<name>.png``;
* ``authors``: ``P/GTmod12/*.png`` with optional ``P/LRbicx{s}/<name>.png`` (BasicSR's benchmark pack);
* ``div2k``:   ``P/DIV2K_<split>_HR/*.png`` with optional ``P/DIV2K_<split>_LR_bicubic/X{s}/<name>x{s}.png``
  (``P`` may also be the ``DIV2K_<split>_HR`` folder itself);
* ``flat``:    ``P/*.{png,bmp,jpg,tif}`` HR images only;
* a folder written by :func:`prepare_dataset` (it holds ``dataset.json``): the source it names, read
  through its cache.

HR images are cropped to a multiple of the scale (top-left, "modcrop"). Where the layout gives
no LR images they are generated as the published protocol does: ``imresize(modcrop(hr, s), 1/s)``
with the MATLAB-exact bicubic. Given LR images are checked against the cropped HR's size.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from ..errors import DataError
from ..checks import check_scale
from ..io_utils import atomic_path, write_json_atomic, write_text_atomic
from .images import IMAGE_EXTENSIONS, is_image_file, read_image, write_image

log = logging.getLogger(__name__)

#: lr_source of generated LR images (also the protocol.json wording)
LR_GENERATED = "generated: MATLAB-exact imresize (msnlan.imresize)"
PREPARED_MARKER = "dataset.json"
MANIFEST_NAME = "manifest.tsv"
CACHE_DIR_NAME = "cache"
LAYOUTS = ("ours", "authors", "div2k", "flat")
_DIV2K_HR = re.compile(r"^DIV2K_(?P<split>.+)_HR$")


@dataclass(frozen=True)
class Pair:
    """One benchmark image: `hr` cropped to a multiple of the scale, `lr` of size hr / scale."""

    name: str
    hr: np.ndarray
    lr: np.ndarray
    lr_source: str  # LR_GENERATED, or "given: <LR file>"


@dataclass
class Dataset:
    """A loaded dataset at one scale."""

    name: str
    root: Path
    layout: str
    scale: int
    items: list[Pair]
    prepared: Path | None = None  # the prepared folder it was loaded through, if any

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Pair]:
        return iter(self.items)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.items]

    @property
    def lr_source(self) -> str:
        """Where the LR images come from, in the protocol.json wording."""
        given = [p.lr_source[len("given: "):] for p in self.items if p.lr_source != LR_GENERATED]
        if not given:
            return LR_GENERATED
        folders = ", ".join(sorted({str(Path(f).parent) for f in given}))
        if len(given) == len(self.items):
            return f"given: {folders}"
        return f"mixed: given in {folders}, others {LR_GENERATED}"


# --------------------------------------------------------------------------- layouts


@dataclass
class SourceLayout:
    """Where the HR images of a dataset are and where its LR images would be."""

    name: str
    root: Path  # the dataset folder (paths in the manifest are relative to it)
    layout: str
    hr_files: list[Path]
    lr_dir_pattern: str | None = None  # relative to root, with {s}
    lr_name_patterns: tuple[str, ...] = ("{name}",)  # file stems tried in the LR folder, with {name}, {s}
    extra: dict = field(default_factory=dict)

    def lr_dir(self, scale: int) -> Path | None:
        return self.root / self.lr_dir_pattern.format(s=scale) if self.lr_dir_pattern else None


def _image_files(folder: Path) -> list[Path]:
    files = sorted((p for p in folder.iterdir() if is_image_file(p)), key=lambda p: p.name)
    seen: dict[str, Path] = {}
    for p in files:
        if p.stem in seen:
            raise DataError(f"{folder}: two images share the name {p.stem!r}: {seen[p.stem].name} and {p.name}")
        seen[p.stem] = p
    return files


def _require_images(folder: Path, files: list[Path]) -> list[Path]:
    if not files:
        exts = ", ".join(e.lstrip(".") for e in IMAGE_EXTENSIONS)
        raise DataError(f"{folder}: no images ({exts}) found in this folder")
    return files


def detect_layout(path: str | os.PathLike) -> SourceLayout:
    """Recognise the layout of a dataset folder (not a prepared one); DataError if none fits."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: dataset folder does not exist")
    if not p.is_dir():
        raise DataError(f"{p}: not a folder (a dataset is a folder of images)")
    p = p.resolve()
    # a path to the HR folder itself names the dataset folder above it
    if p.name == "HR" and not (p / "HR").is_dir():
        return detect_layout(p.parent)
    if p.name == "GTmod12" and not (p / "GTmod12").is_dir():
        return detect_layout(p.parent)
    if (p / "HR").is_dir():
        return SourceLayout(p.name, p, "ours", _require_images(p / "HR", _image_files(p / "HR")),
                            "LR/x{s}", ("{name}", "{name}x{s}"))
    if (p / "GTmod12").is_dir():
        return SourceLayout(p.name, p, "authors", _require_images(p / "GTmod12", _image_files(p / "GTmod12")),
                            "LRbicx{s}", ("{name}", "{name}x{s}"))
    div2k = _detect_div2k(p)
    if div2k is not None:
        return div2k
    files = _image_files(p)
    if files:
        return SourceLayout(p.name, p, "flat", files)
    exts = ", ".join(e.lstrip(".") for e in IMAGE_EXTENSIONS)
    raise DataError(f"{p}: no images found: expected HR/, GTmod12/, DIV2K_<split>_HR/ or image files "
                    f"({exts}) in this folder")


def _detect_div2k(p: Path) -> SourceLayout | None:
    match = _DIV2K_HR.match(p.name)
    if match:
        hr_dir, root = p, p.parent
    else:
        candidates = sorted(d for d in p.iterdir() if d.is_dir() and _DIV2K_HR.match(d.name))
        if not candidates:
            return None
        if len(candidates) > 1:
            names = ", ".join(d.name for d in candidates)
            raise DataError(f"{p}: holds several DIV2K HR folders ({names}); pass the one to use, "
                            f"e.g. {candidates[0]}")
        hr_dir, root = candidates[0], p
        match = _DIV2K_HR.match(hr_dir.name)
    split = match.group("split")
    files = _require_images(hr_dir, _image_files(hr_dir))
    return SourceLayout(f"DIV2K_{split}", root, "div2k", files, f"DIV2K_{split}_LR_bicubic/X{{s}}",
                        ("{name}x{s}", "{name}"), {"hr_dir": hr_dir.name})


def _find_lr_file(lr_dir: Path, hr_file: Path, scale: int, patterns: tuple[str, ...]) -> Path:
    tried = []
    for pattern in patterns:
        stem = pattern.format(name=hr_file.stem, s=scale)
        for ext in (".png",) + tuple(e for e in IMAGE_EXTENSIONS if e != ".png"):
            candidate = lr_dir / f"{stem}{ext}"
            if candidate.is_file():
                return candidate
        tried.append(f"{stem}.png")
    raise DataError(f"{lr_dir}: no LR image for HR file {hr_file} (looked for {', '.join(tried)}); "
                    "an LR folder must hold every image, or remove it to generate LR images")


# --------------------------------------------------------------------------- cache


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ArrayCache:
    """Decoded uint8 arrays as .npy files, keyed by the source file's sha256 (a changed file misses)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:  # a damaged entry is rebuilt, not trusted
            log.warning("ignoring unreadable cache entry %s (%s)", path, exc)
            return None

    def put(self, key: str, array: np.ndarray) -> None:
        buffer = io.BytesIO()  # numpy reports a short write without its reason; a plain write names it
        np.save(buffer, array, allow_pickle=False)
        with atomic_path(self._path(key)) as tmp:
            tmp.write_bytes(buffer.getbuffer())


@lru_cache(maxsize=None)
def imresize_tag() -> str:
    """Short hash of the bicubic implementation: generated LR is re-made when it changes."""
    from . import imresize as module

    return hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()[:12]


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Top-left crop to a multiple of `scale` in height and width (what the LR was made from)."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


@dataclass
class _FileRecord:
    path: Path
    sha256: str
    width: int
    height: int
    mode: str


def _read_file(path: Path, cache: ArrayCache | None, drop_alpha: bool,
               records: dict[Path, _FileRecord] | None) -> tuple[np.ndarray, str]:
    """Decoded image and its cache key (sha256 of the file, plus how it was decoded)."""
    data = path.read_bytes() if (cache is not None or records is not None) else None
    sha = hashlib.sha256(data).hexdigest() if data is not None else ""
    key = sha + ("-dropalpha" if drop_alpha else "")
    array = cache.get(key) if cache is not None else None
    if array is None:
        array = read_image(path, drop_alpha=drop_alpha)
        if cache is not None:
            cache.put(key, array)
    if records is not None and path not in records:
        with Image.open(io.BytesIO(data)) as im:
            mode = im.mode
        records[path] = _FileRecord(path, sha, array.shape[1], array.shape[0], mode)
    return array, key


def _size(a: np.ndarray) -> str:
    return f"{a.shape[1]}x{a.shape[0]}" + ("" if a.ndim == 2 else f"x{a.shape[2]}")


def _iter_pairs(src: SourceLayout, scale: int, *, cache: ArrayCache | None, drop_alpha: bool,
                lr_dir: Path | None = None,
                records: dict[Path, _FileRecord] | None = None) -> Iterator[Pair]:
    """Pairs of a source, one at a time (generating LR where none is given)."""
    lr_folder = Path(lr_dir) if lr_dir is not None else src.lr_dir(scale)
    if lr_dir is not None and not lr_folder.is_dir():
        raise DataError(f"{lr_folder}: LR folder does not exist")
    use_given = lr_folder is not None and lr_folder.is_dir()
    for hr_file in src.hr_files:
        full, hr_key = _read_file(hr_file, cache, drop_alpha, records)
        hr = modcrop(full, scale)
        if hr.shape[0] == 0 or hr.shape[1] == 0:
            raise DataError(f"{hr_file}: image {_size(full)} is smaller than the scale {scale}")
        if use_given:
            lr_file = _find_lr_file(lr_folder, hr_file, scale, src.lr_name_patterns)
            lr, _ = _read_file(lr_file, cache, drop_alpha, records)
            expected = (lr.shape[0] * scale, lr.shape[1] * scale)
            if hr.shape[:2] != expected or hr.ndim != lr.ndim:
                raise DataError(
                    f"HR {hr_file} ({_size(full)}, {_size(hr)} after cropping to a multiple of {scale}) does "
                    f"not match LR {lr_file} ({_size(lr)}): at x{scale} the LR must be "
                    f"{hr.shape[1] // scale}x{hr.shape[0] // scale}"
                    + ("" if hr.ndim == lr.ndim else " with the same number of channels"))
            yield Pair(hr_file.stem, hr, lr, f"given: {lr_file}")
        else:
            lr = _generated_lr(hr, hr_key, scale, cache)
            yield Pair(hr_file.stem, hr, lr, LR_GENERATED)


def _generated_lr(hr: np.ndarray, hr_key: str, scale: int, cache: ArrayCache | None) -> np.ndarray:
    key = f"{hr_key}.x{scale}.bicubic-{imresize_tag()}" if cache is not None else ""
    lr = cache.get(key) if cache is not None else None
    if lr is None:
        from .imresize import imresize

        lr = imresize(np.ascontiguousarray(hr), 1.0 / scale)
        if lr.shape[:2] != (hr.shape[0] // scale, hr.shape[1] // scale):
            raise RuntimeError(f"imresize gave {lr.shape} for {hr.shape} at 1/{scale}")
        if cache is not None:
            cache.put(key, lr)
    return lr


# --------------------------------------------------------------------------- public API


def _check_scale(scale) -> int:
    return check_scale(scale, supported=None, error=DataError)


def read_prepared_info(folder: str | os.PathLike) -> dict:
    """The dataset.json of a prepared folder (DataError if missing or damaged)."""
    path = Path(folder) / PREPARED_MARKER
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: not found; {folder} is not a prepared dataset (run msnlan prepare)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable ({exc}); re-run msnlan prepare") from None
    for key in ("source", "layout", "scales", "names"):
        if key not in info:
            raise DataError(f"{path}: lacks key {key!r}; re-run msnlan prepare")
    return info


def load_dataset(path: str | os.PathLike, scale: int, *, cache_dir: str | os.PathLike | None = None,
                 drop_alpha: bool = False, lr_dir: str | os.PathLike | None = None) -> Dataset:
    """Load every (HR, LR) pair of a dataset at `scale`.

    `path` is a folder in any accepted layout, or a folder written by :func:`prepare_dataset`
    (then its cache is used, and `cache_dir` defaults to it). `cache_dir` keeps decoded arrays
    keyed by file content. `lr_dir` names a folder of LR images for this scale that replaces the
    layout's own (e.g. reference MATLAB LR images kept elsewhere).
    """
    scale = _check_scale(scale)
    path = Path(path)
    prepared = None
    if (path / PREPARED_MARKER).is_file():
        prepared = path
        info = read_prepared_info(path)
        source = Path(info["source"])
        if not source.exists():
            raise DataError(f"{path}: its source {source} no longer exists; re-run msnlan prepare")
        src = detect_layout(source)
        if [p.stem for p in src.hr_files] != list(info["names"]):
            now = {p.stem for p in src.hr_files}
            then = set(info["names"])
            raise DataError(f"{path}: the source {source} changed since it was prepared (added: "
                            f"{sorted(now - then) or 'none'}, removed: {sorted(then - now) or 'none'}); "
                            "re-run msnlan prepare")
        drop_alpha = drop_alpha or bool(info.get("drop_alpha", False))
        if cache_dir is None:
            cache_dir = path / CACHE_DIR_NAME
    else:
        src = detect_layout(path)
    cache = ArrayCache(cache_dir) if cache_dir is not None else None
    items = list(_iter_pairs(src, scale, cache=cache, drop_alpha=drop_alpha,
                             lr_dir=Path(lr_dir) if lr_dir is not None else None))
    return Dataset(src.name, src.root, src.layout, scale, items, prepared)


MANIFEST_COLUMNS = ("file", "sha256", "width", "height", "mode")


def dataset_files(path: str | os.PathLike, scale: int) -> dict[str, str]:
    """{file relative to the dataset folder: sha256} of every image a load at `scale` reads (HR and
    given LR). A prepared folder stands for its source: its manifest may predate an edit of the source."""
    scale = _check_scale(scale)
    path = Path(path)
    if (path / PREPARED_MARKER).is_file():
        path = Path(read_prepared_info(path)["source"])
    src = detect_layout(path)
    files = list(src.hr_files)
    lr_folder = src.lr_dir(scale)
    if lr_folder is not None and lr_folder.is_dir():
        files += [_find_lr_file(lr_folder, f, scale, src.lr_name_patterns) for f in src.hr_files]
    return {f.relative_to(src.root).as_posix(): file_sha256(f) for f in files}


def files_fingerprint(files: dict[str, str]) -> str:
    """One sha256 over a set's file list (relative path and content hash of each file)."""
    text = "".join(f"{name}\t{sha}\n" for name, sha in sorted(files.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def changed_files(before: dict[str, str], after: dict[str, str]) -> str:
    """'changed: a.png; added: b.png; removed: c.png' (the parts that apply, 'none' if equal)."""
    parts = []
    for label, names in (("changed", [n for n in before if n in after and before[n] != after[n]]),
                         ("added", [n for n in after if n not in before]),
                         ("removed", [n for n in before if n not in after])):
        if names:
            names = sorted(names)
            parts.append(f"{label}: {', '.join(names[:10])}{f' and {len(names) - 10} more' if len(names) > 10 else ''}")
    return "; ".join(parts) or "none"


def prepare_dataset(src: str | os.PathLike, out_dir: str | os.PathLike, scales, *,
                    drop_alpha: bool = False) -> dict:
    """Check and cache a dataset once: manifest, decoded-array cache, generated LR images.

    Writes ``out_dir/manifest.tsv`` (every source file read: path relative to the dataset
    folder, sha256, width, height, PIL mode), ``out_dir/cache/`` (one .npy per decoded image and
    per generated LR, keyed by the source's sha256), ``out_dir/LR/x{s}/<name>.png`` for generated
    LR images, and ``out_dir/dataset.json`` last (the completion marker). Returns dataset.json's content.
    """
    src_path, out_dir = Path(src), Path(out_dir)
    if (src_path / PREPARED_MARKER).is_file():
        raise DataError(f"{src_path}: is already a prepared dataset; pass its source "
                        f"({read_prepared_info(src_path)['source']})")
    scales = sorted({_check_scale(s) for s in scales})
    if not scales:
        raise DataError("prepare_dataset: give at least one scale")
    layout = detect_layout(src_path)
    from ..checks import check_output_path
    from ..metrics import check_evaluable

    check_output_path(out_dir, {"dataset folder": layout.root,
                                "HR folder": layout.hr_files[0].parent}, "--out")
    (out_dir / PREPARED_MARKER).unlink(missing_ok=True)  # not complete until rewritten
    cache = ArrayCache(out_dir / CACHE_DIR_NAME)
    records: dict[Path, _FileRecord] = {}
    lr_info: dict[str, str] = {}
    for s in scales:
        sources = set()
        for hr_file, pair in zip(layout.hr_files, _iter_pairs(layout, s, cache=cache, drop_alpha=drop_alpha,
                                                              records=records)):
            check_evaluable(pair.hr.shape, s, f"{hr_file}")
            sources.add(pair.lr_source if pair.lr_source == LR_GENERATED
                        else "given: " + str(Path(pair.lr_source[len("given: "):]).parent))
            if pair.lr_source == LR_GENERATED:
                target = out_dir / "LR" / f"x{s}" / f"{pair.name}.png"
                write_image(target, pair.lr)
        lr_info[str(s)] = sources.pop() if len(sources) == 1 else "mixed"
    rows = ["\t".join(MANIFEST_COLUMNS)]
    for rec in sorted(records.values(), key=lambda r: str(r.path)):
        rel = rec.path.relative_to(layout.root)
        rows.append("\t".join([rel.as_posix(), rec.sha256, str(rec.width), str(rec.height), rec.mode]))
    write_text_atomic(out_dir / MANIFEST_NAME, "\n".join(rows) + "\n")
    from .. import __version__

    info = {
        "name": layout.name,
        "source": str(layout.root),
        "layout": layout.layout,
        "scales": scales,
        "n_images": len(layout.hr_files),
        "names": [p.stem for p in layout.hr_files],
        "drop_alpha": bool(drop_alpha),
        "lr": lr_info,
        "generated_lr_dirs": {str(s): f"LR/x{s}" for s in scales if lr_info[str(s)] == LR_GENERATED},
        "imresize_tag": imresize_tag(),
        "manifest": MANIFEST_NAME,
        "cache": CACHE_DIR_NAME,
        "msnlan_version": __version__,
    }
    write_json_atomic(out_dir / PREPARED_MARKER, info)  # last: marks the folder complete
    return info


def read_manifest(folder: str | os.PathLike) -> list[dict]:
    """Rows of a prepared folder's manifest.tsv as dicts (width/height as int)."""
    path = Path(folder) / MANIFEST_NAME
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
    except FileNotFoundError:
        raise DataError(f"{path}: not found; re-run msnlan prepare") from None
    for row in rows:
        row["width"], row["height"] = int(row["width"]), int(row["height"])
    return rows
