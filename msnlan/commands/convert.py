"""`msnlan convert AUTHORS.pt OUT.pt --scale S`: the authors' checkpoint as an msnlan weights file."""
from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("convert", help="convert the authors' released checkpoint to an msnlan weights file")
    p.add_argument("authors", metavar="AUTHORS.pt", help="the authors' checkpoint (a state_dict)")
    p.add_argument("out", metavar="OUT.pt", help="where to write the msnlan weights file (final.pt format)")
    p.add_argument("--scale", type=int, required=True, choices=(2, 3, 4), help="upscaling factor of the checkpoint")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import CheckpointError
    from ..models.convert import convert_authors_checkpoint
    from ..models.network import build_model
    from ..training.checkpoint import FORMAT_VERSION, WEIGHTS_FORMAT, load, save

    from ..checks import check_output_path

    src, out = Path(args.authors), Path(args.out)
    check_output_path(out, {"authors' checkpoint": src}, "OUT.pt")
    raw = load(src)  # torch.load(weights_only=True); unreadable files raise CheckpointError
    try:
        state = convert_authors_checkpoint(raw, args.scale)
    except CheckpointError as exc:
        raise CheckpointError(f"{src}: {exc}") from None
    model = build_model("msnlan", args.scale)
    model.load_state_dict(state, strict=True)  # proves the result loads before anything is written
    record = {"format": WEIGHTS_FORMAT, "version": FORMAT_VERSION, "model": state,
              "variant": model.variant, "scale": args.scale, "preset": "authors",
              "converted_from": str(src)}
    save(record, out)
    print(f"wrote {out}: {len(state)} tensors of the msnlan variant at x{args.scale} (from {src})")
    return 0
