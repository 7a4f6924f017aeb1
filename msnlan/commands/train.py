"""`msnlan train`: train a variant at one scale into a run directory (resumable)."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("train", help="train a variant at one scale (resumes RUN_DIR/last.pt if present)",
                       description="Train a variant with a preset's recipe. Running the same command again "
                                   "continues from RUN_DIR/last.pt; RUN_DIR/final.pt is written at the end.")
    p.add_argument("--variant", required=True, help="registered variant name or variant YAML path")
    p.add_argument("--scale", required=True, type=int, help="SR scale (2, 3, 4)")
    p.add_argument("--train-data", required=True, help="training dataset folder (any accepted layout)")
    p.add_argument("--val-data", required=True, help="validation dataset folder (keep it small: whole-image inference)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory")
    p.add_argument("--preset", default="paper", help="preset name (paper, demo, ...) or YAML path (default: paper)")
    p.add_argument("--init-from", metavar="CHECKPOINT",
                   help="start from another scale's weights (e.g. x2 final.pt); the upsampler is not loaded")
    p.add_argument("--device", default="auto",
                   help="auto (a free leased GPU, else CPU), cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a preset key, e.g. --set lr=1e-4 --set model.n_feats=32 (repeatable)")
    p.add_argument("--stage", type=int, metavar="N", dest="until_stage",
                   help="for a preset with stages: train stages up to N only and stop (the workflow runs one "
                        "job per stage); RUN_DIR/final.pt is written once the last stage is done")
    p.add_argument("--restart", action="store_true",
                   help="move an existing RUN_DIR aside (RUN_DIR.old-<time>) and start afresh")
    p.add_argument("--resume-with", dest="resume_with", action="append", default=[], metavar="KEY=VALUE",
                   help="continue from RUN_DIR/last.pt with a changed optimizer setting (lr, betas, eps, "
                        "weight_decay, milestones, gamma), e.g. after a divergence: --resume-with lr=2e-5; "
                        "recorded in RUN_DIR/config.yaml (resumed_with); repeatable")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..training.engine import train

    train(args.variant, args.scale, args.train_data, args.val_data, args.out, preset=args.preset,
          overrides=args.overrides, init_from=args.init_from, device=args.device, restart=args.restart,
          resume_with=args.resume_with, until_stage=args.until_stage)
    return 0
