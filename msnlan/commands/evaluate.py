"""`msnlan evaluate`: one method at one scale on one or more datasets -> per-image CSV + protocol.json
each."""
from __future__ import annotations

from ..attention_modes import ATTENTION_MODES


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a method (variant or bicubic) on a dataset: per-image CSV "
                                        "and a protocol.json beside it")
    p.add_argument("--method", required=True, help="a variant name, a variant YAML path, or 'bicubic'")
    p.add_argument("--checkpoint", help="trained weights (final.pt, a training state, or a plain state_dict)")
    p.add_argument("--random-init", action="store_true",
                   help="evaluate a variant with random weights (seeded; smoke tests only; recorded)")
    p.add_argument("--scale", type=int, required=True, help="SR scale (2, 3, 4, ...)")
    p.add_argument("--dataset", required=True, nargs="+",
                   help="dataset folder (any accepted layout) or a prepared folder; several are evaluated one "
                        "after another in this process, each with its own --out (and --save-images)")
    p.add_argument("--lr-dir", help="folder of given LR images for this scale (<name>.png), replacing the "
                                    "dataset's own or generated ones (one --dataset only)")
    p.add_argument("--out", required=True, nargs="+",
                   help="per-image results, RESULTS.csv (RESULTS.protocol.json beside it); one per --dataset, "
                        "in the same order")
    p.add_argument("--save-images", metavar="DIR", nargs="+",
                   help="also write the SR outputs as DIR/<image>.png; one DIR per --dataset")
    p.add_argument("--tile", choices=("none", "chop"), default="none",
                   help="'chop': the authors' recursive four-quadrant tiling (default: whole image)")
    p.add_argument("--min-pixels", type=int,
                   help="chop: split while a tile has at least this many LR pixels (default 4000, 3600 at x4)")
    p.add_argument("--overlap", type=int, default=10, help="chop: LR pixels each quadrant reaches past the middle")
    p.add_argument("--self-ensemble", action="store_true", help="x8 flips/transposes, outputs averaged ('+' rows)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda or cuda:N")
    p.add_argument("--attention-mode", choices=ATTENTION_MODES, default="auto",
                   help="MSNLAB attention form: auto (the faster form measured for the device), fast or direct; "
                        "the protocol records the form that ran")
    p.add_argument("--name", help="the method name recorded in the protocol (default: the variant's name)")
    p.add_argument("--weights-source", metavar="TEXT",
                   help="where the checkpoint comes from, for weights not trained by this workflow (e.g. the "
                        "authors' released ones): recorded in the protocol, shown as the row's group in the report")
    p.add_argument("--label", help="with --weights-source: the row's display name (default: --name)")
    p.add_argument("--drop-alpha", action="store_true", help="ignore an alpha channel instead of refusing the image")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..evaluation import check_evaluation_paths, evaluate_method

    jobs = _paired(args)
    for _, out, save in jobs:  # before the first image: no output may lie in any of the command's inputs
        check_evaluation_paths(args.method, args.dataset, out, checkpoint=args.checkpoint, lr_dir=args.lr_dir,
                               save_images=save)
    for dataset, out, save in jobs:
        protocol = evaluate_method(
            args.method, dataset, args.scale, out, checkpoint=args.checkpoint, random_init=args.random_init,
            tile=args.tile, min_pixels=args.min_pixels, overlap=args.overlap, self_ensemble=args.self_ensemble,
            device=args.device, save_images=save, drop_alpha=args.drop_alpha, lr_dir=args.lr_dir,
            attention_mode=args.attention_mode, name=args.name, label=args.label,
            weights_source=args.weights_source)
        s = protocol["summary"]
        print(f"{protocol['method']} x{args.scale} {protocol['benchmark']}: PSNR {s['psnr']:.3f} dB, "
              f"SSIM {s['ssim']:.4f} over {s['n_images']} images -> {out}", flush=True)
    return 0


def _paired(args) -> list[tuple[str, str, str | None]]:
    """(dataset, out, save-images folder) per --dataset. One process evaluates several datasets, so
    that a workflow imports torch once per method and scale rather than once per benchmark."""
    from ..checks import check_paired
    from ..errors import ConfigError

    check_paired("--dataset", args.dataset, {"--out": args.out, "--save-images": args.save_images})
    if args.lr_dir is not None and len(args.dataset) > 1:
        raise ConfigError(f"--lr-dir holds the LR images of one dataset; {len(args.dataset)} --dataset folders "
                          "were given")
    return list(zip(args.dataset, args.out, args.save_images or [None] * len(args.dataset)))
