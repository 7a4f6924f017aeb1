"""Random aligned LR/HR patch pairs for training, from a seeded generator whose state is saved.

Each sample draws, in this order and from one torch.Generator: an image index, the LR patch's top
row and left column, and one of the 8 flip/transpose variants. The HR patch is the same region at
`scale` times the coordinates. Because only that generator decides the batches, restoring its state
(`state_dict`) continues the exact sequence after a resume.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..errors import DataError


@dataclass
class TrainImage:
    name: str
    hr: np.ndarray  # uint8 H x W x 3
    lr: np.ndarray  # uint8 H/s x W/s x 3


def to_rgb(image: np.ndarray, name: str) -> np.ndarray:
    """uint8 HxW or HxWx{1,3} -> HxWx3 (grayscale replicated, as SR training code does)."""
    if image.dtype != np.uint8:
        raise DataError(f"training image {name}: expected uint8, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise DataError(f"training image {name}: expected HxW or HxWx3, got shape {image.shape}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image)


def training_images(pairs: Sequence, scale: int, patch_size: int, source: str = "training data",
                    warn=print) -> list[TrainImage]:
    """Pairs (objects with .name, .hr, .lr) -> RGB TrainImages; images whose LR is smaller than
    the patch are left out (with a warning naming them); none left raises DataError."""
    images, too_small = [], []
    for pair in pairs:
        hr, lr = to_rgb(pair.hr, pair.name), to_rgb(pair.lr, pair.name)
        if hr.shape[0] != lr.shape[0] * scale or hr.shape[1] != lr.shape[1] * scale:
            raise DataError(f"{source}: image {pair.name}: HR {hr.shape[:2]} is not {scale} x LR {lr.shape[:2]}")
        if lr.shape[0] < patch_size or lr.shape[1] < patch_size:
            too_small.append(f"{pair.name} ({lr.shape[1]}x{lr.shape[0]})")
            continue
        images.append(TrainImage(pair.name, hr, lr))
    if too_small:
        warn(f"{source}: {len(too_small)} image(s) with LR smaller than the {patch_size}x{patch_size} "
             f"patch left out: {', '.join(too_small[:10])}{' ...' if len(too_small) > 10 else ''}")
    if not images:
        raise DataError(f"{source}: no image has an LR side of at least patch_size={patch_size} at x{scale}")
    return images


def augment(patch: np.ndarray, mode: int) -> np.ndarray:
    """One of the 8 dihedral variants: bit 0 horizontal flip, bit 1 vertical flip, bit 2 transpose."""
    if mode & 1:
        patch = patch[:, ::-1]
    if mode & 2:
        patch = patch[::-1, :]
    if mode & 4:
        patch = patch.transpose(1, 0, 2)
    return patch


class PatchSampler:
    """Batches of (LR, HR) patches as uint8 arrays N x P x P x 3 and N x sP x sP x 3."""

    def __init__(self, images: Sequence[TrainImage], scale: int, patch_size: int, batch_size: int,
                 seed: int, augment: bool = True):
        self.images, self.scale, self.patch_size = list(images), scale, patch_size
        self.batch_size, self.augment = batch_size, augment
        self.generator = torch.Generator().manual_seed(seed)
        self.batches = 0

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.generator))

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        p, s = self.patch_size, self.scale
        lr_batch = np.empty((self.batch_size, p, p, 3), np.uint8)
        hr_batch = np.empty((self.batch_size, p * s, p * s, 3), np.uint8)
        for i in range(self.batch_size):
            img = self.images[self._randint(len(self.images))]
            y = self._randint(img.lr.shape[0] - p + 1)
            x = self._randint(img.lr.shape[1] - p + 1)
            mode = self._randint(8) if self.augment else 0
            lr_batch[i] = augment(img.lr[y:y + p, x:x + p], mode)
            hr_batch[i] = augment(img.hr[y * s:(y + p) * s, x * s:(x + p) * s], mode)
        self.batches += 1
        return lr_batch, hr_batch

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "batches": self.batches}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"].cpu())
        self.batches = int(state["batches"])


class PrefetchingSampler:
    """Keeps up to `depth` batches ready in a background thread, with the same batch sequence
    and a resumable state: the state before the oldest unconsumed batch."""

    def __init__(self, sampler: PatchSampler, depth: int):
        self.sampler, self.depth = sampler, depth
        self._ready: deque = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="msnlan-batches", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while len(self._ready) >= self.depth and not self._stop:
                        self._cond.wait()
                    if self._stop:
                        return
                    # made under the lock, so state() never sees a batch in flight
                    state = self.sampler.state_dict()
                    batch = self.sampler.sample()
                    self._ready.append((state, batch))
                    self._cond.notify_all()
        except BaseException as exc:  # surfaced in the training loop
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        with self._cond:
            while not self._ready and self._error is None:
                self._cond.wait()
            if self._error is not None and not self._ready:
                raise self._error
            _, batch = self._ready.popleft()
            self._cond.notify_all()
            return batch

    def state_dict(self) -> dict:
        with self._cond:
            return self._ready[0][0] if self._ready else self.sampler.state_dict()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join()


def to_tensor(batch: np.ndarray, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """uint8 N x H x W x 3 -> float32 N x 3 x H x W (0..255) on `device`."""
    t = torch.from_numpy(batch).permute(0, 3, 1, 2)
    if device.type == "cuda":
        t = t.pin_memory().to(device, non_blocking=True)
    t = t.float()
    return t.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
