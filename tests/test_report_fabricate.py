"""A fabricated results folder (TEST DATA ONLY) in the layout of docs/architecture.md, and checks of it.

The SR "outputs" are the HR images plus seeded noise (stronger for weaker variants) and the bicubic
rows are real MATLAB-bicubic upscalings; the per-image CSVs hold the PSNR/SSIM of those saved images,
so everything the report computes from the folder is checkable.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from msnlan.variants import resolve_variant

PROTOCOL_BASE = {
    "lr_source": "generated: MATLAB-exact imresize (msnlan.imresize)",
    "tiling": {"mode": "none", "min_pixels": None, "overlap": 10},
    "color_space": "Y (ITU-R BT.601, 16-235)",
    "ssim": "gaussian 11x11 sigma 1.5, K1 0.01, K2 0.03, L 255, valid",
    "versions": {"msnlan": "0.1.0", "torch": "2.13.0", "numpy": "2.0", "python": "3.11"},
    "device": "CPU: fabricated", "git_commit": "0" * 40, "date": "2025-01-01T00:00:00+00:00",
}
#: noise level of each fabricated method (smaller = better PSNR)
NOISE = {"msnlan": 3.0, "no_msnlab": 4.0, "single_scale": 3.5, "no_dense_skips": 3.2, "rcab": 3.8}


def _texture(rng: np.random.Generator, h: int, w: int, gray: bool) -> np.ndarray:
    """A structured test image: gratings and blobs (fine detail somewhere for the crop chooser)."""
    y, x = np.mgrid[0:h, 0:w].astype(float)
    base = 128 + 60 * np.sin(x / (3 + rng.uniform(0, 2))) * np.cos(y / (5 + rng.uniform(0, 3)))
    base += 40 * np.exp(-((x - w * 0.7) ** 2 + (y - h * 0.3) ** 2) / (2 * (w / 6) ** 2))
    base += 30 * np.sin(x / 1.3 + y / 2.1) * (x > w / 2)  # fine detail bicubic cannot restore
    if gray:
        return np.clip(base, 0, 255).astype(np.uint8)
    chans = [base + rng.uniform(-30, 30) + 10 * np.sin((x + y) / rng.uniform(2, 6)) for _ in range(3)]
    return np.clip(np.stack(chans, -1), 0, 255).astype(np.uint8)


def _write_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def fabricate_results(root: Path, *, benchmarks=("DemoA", "DemoB"), scales=(2, 4),
                      variants=("msnlan", "no_msnlab"), n_images: int | dict = 3, size=(72, 96), self_ensemble=(),
                      preset="demo", with_runs=True, with_complexity=True, seed=0, seeds=()) -> Path:
    """Write results/<name>/ under `root` and the source datasets under root/src; returns the results folder.

    `seeds`: training seeds; with any, the trained methods get seed<k>/ folders (bicubic does not) and
    each seed's noise level differs a little (training noise)."""
    rng = np.random.default_rng(seed)
    results = root / "results" / "fab"
    for b_i, bench in enumerate(benchmarks):
        src = root / "src" / bench / "HR"
        hrs = {}
        count = n_images[bench] if isinstance(n_images, dict) else n_images
        for i in range(count):
            name = f"{bench.lower()}_{i:02d}"
            hrs[name] = _texture(rng, size[0] + 4 * i, size[1], gray=(b_i == 1 and i == 0))
            _write_png(src / f"{name}.png", hrs[name])
        for s in scales:
            methods = ["bicubic"] + list(variants) + [f"{v}+" for v in self_ensemble]
            for method in methods:
                for k in ([None] if method == "bicubic" or not seeds else list(seeds)):
                    _fabricate_eval(results, root, rng, hrs, method, s, bench, k)
    for v in variants:
        resolved = resolve_variant(v)
        for s in scales:
            for k in (list(seeds) or [None]) if with_runs else []:
                run = results / "runs" / v / f"x{s}" / ("" if k is None else f"seed{k}")
                run.mkdir(parents=True, exist_ok=True)
                cfg = {"variant": resolved, "scale": s, "preset": {"name": preset, "source": f"{preset}.yaml"},
                       "training": {"iterations": 300, "batch_size": 8, "patch_size": 24, "lr": 5e-4},
                       "data": {"train": "/x", "val": "/y"}, "init_from": None}
                (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
                (run / "environment.json").write_text(json.dumps({"device": "CPU: fabricated trainer"}))
                its = np.arange(10, 301, 10)
                lines = ["iteration,loss,lr,val_psnr,seconds,images_per_s"]
                for it in its:
                    val = f"{25 + 3 * np.log10(it) - NOISE[v] + 0.1 * (k or 0):.4f}" if it % 100 == 0 else ""
                    lines.append(f"{it},{20 / np.sqrt(it) + rng.uniform(0, .3):.5f},0.0005,{val},{it * .1:.2f},80.0")
                (run / "log.csv").write_text("\n".join(lines) + "\n")
            if with_complexity:
                c = results / "complexity" / v
                c.mkdir(parents=True, exist_ok=True)
                params = 9_581_043 if v == "msnlan" else 9_432_355
                macs = params * 230_400 / s ** 2 * 4.1
                direct = params * 230_400 / s ** 2 * 9.0
                data = {"variant": v, "scale": s,
                        "params": {"total": params + 24, "trainable": params, "fixed": 24},
                        "macs": {"720p": {"lr_size": [720 // s, 1280 // s], "total": macs,
                                          "as_executed": {"total": macs, "total_plus": 8 * macs},
                                          "direct_form": {"total": direct, "total_plus": 8 * direct},
                                          "by_module": {},
                                          "uncounted": {"aten::softmax": 3} if v == "msnlan" else {}},
                                 "48x48": {"lr_size": [48, 48], "total": params * 2304 * 1.1}},
                        "runtime": {"device": "CPU: fabricated", "median_ms": 120.5 if v == "msnlan" else 80.25,
                                    "runs": 3, "peak_memory_mb": 512.0, "lr_size": [64, 64]},
                        "tool": {"fvcore": "0.1.5", "torch": "2.13.0"}, "self_ensemble_factor": 8}
                (c / f"x{s}.json").write_text(json.dumps(data))
    return results


def _fabricate_eval(results, root, rng, hrs, method, s, bench, k) -> None:
    """One evaluation: SR images (noisy HR, or real bicubic), the per-image CSV and the protocol."""
    from msnlan.data.imresize import imresize
    from msnlan.metrics import evaluate_pair

    seed_dir = "" if k is None else f"seed{k}"
    rows = []
    for name, hr_full in hrs.items():
        h, w = hr_full.shape[:2]
        hr = hr_full[: h - h % s, : w - w % s]
        if method == "bicubic":
            sr = imresize(imresize(hr, 1 / s), s)
        else:
            base = method.rstrip("+")
            sigma = NOISE.get(base, 3.3) * s / 2 * (0.8 if method.endswith("+") else 1.0) * (1 + 0.03 * (k or 0))
            sr = np.clip(hr + rng.normal(0, sigma, hr.shape), 0, 255).round().astype(np.uint8)
        _write_png(results / "images" / method / f"x{s}" / seed_dir / bench / f"{name}.png", sr)
        m = evaluate_pair(sr, hr, s)
        rows.append(f"{name},{m['psnr']!r},{m['ssim']!r},{rng.uniform(0.1, 1):.4f},{rng.uniform(200, 400):.1f}")
    d = results / "eval" / method / f"x{s}" / seed_dir
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{bench}.csv").write_text("image,psnr,ssim,seconds,peak_memory_mb\n" + "\n".join(rows) + "\n")
    vals = np.array([[float(x) for x in r.split(",")[1:3]] for r in rows])
    run = results / "runs" / method.rstrip("+") / f"x{s}" / seed_dir
    protocol = {"method": method, "variant_hash": None if method == "bicubic" else "abc",
                "checkpoint": None if method == "bicubic" else str(run / "final.pt"),
                "scale": s, "benchmark": bench, "dataset": str(root / "src" / bench),
                **PROTOCOL_BASE, "self_ensemble": method.endswith("+"), "shave": s,
                "summary": {"psnr": float(vals[:, 0].mean()), "ssim": float(vals[:, 1].mean()),
                            "n_images": len(rows), "n_infinite_psnr": 0}}
    (d / f"{bench}.protocol.json").write_text(json.dumps(protocol, indent=1))


def write_config(path: Path, *, benchmarks=("DemoA", "DemoB"), scales=(2, 4), variants=("msnlan", "no_msnlab"),
                 report=None) -> Path:
    cfg = {"name": "fab", "scales": list(scales), "variants": list(variants),
           "benchmarks": {b: f"demo:{b}" for b in benchmarks}, "train": {"preset": "demo"}}
    if report is not None:
        cfg["report"] = report
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_fabricated_folder_follows_the_layout(tmp_path):
    res = fabricate_results(tmp_path, n_images=2, scales=(2,), variants=("msnlan",))
    assert (res / "eval" / "bicubic" / "x2" / "DemoA.csv").is_file()
    assert (res / "eval" / "msnlan" / "x2" / "DemoB.protocol.json").is_file()
    assert (res / "images" / "msnlan" / "x2" / "DemoA" / "demoa_00.png").is_file()
    assert (res / "runs" / "msnlan" / "x2" / "log.csv").is_file()
    assert (res / "complexity" / "msnlan" / "x2.json").is_file()
