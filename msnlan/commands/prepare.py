"""`msnlan prepare`: check a dataset once and cache it (manifest, decoded arrays, generated LR)."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("prepare", help="check and cache a dataset: manifest.tsv, cache/, generated LR, "
                                       "dataset.json (written last)")
    p.add_argument("--dataset", required=True, help="dataset folder (HR/, GTmod12/, DIV2K_*_HR/ or flat images)")
    p.add_argument("--scales", type=int, nargs="+", required=True, help="scales to prepare, e.g. 2 3 4")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--drop-alpha", action="store_true", help="ignore an alpha channel instead of refusing the image")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.datasets import prepare_dataset

    info = prepare_dataset(args.dataset, args.out, args.scales, drop_alpha=args.drop_alpha)
    lr = "; ".join(f"x{s}: {src}" for s, src in info["lr"].items())
    print(f"{info['name']} ({info['layout']} layout): {info['n_images']} images prepared in {args.out} ({lr})")
    return 0
