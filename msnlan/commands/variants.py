"""`msnlan variants`: list the registered variants, print one resolved, or write the network a
training preset makes of one (`--preset ... --out FILE`, the workflow's trained_variant rule)."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("variants", help="list registered variants, show one resolved (JSON), or write it "
                                        "as a training preset trains it")
    p.add_argument("name", nargs="?", help="a variant name or YAML path to resolve")
    p.add_argument("--preset", help="apply this training preset's model settings (name or YAML path), as "
                                    "msnlan train does")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="preset key to replace, as in msnlan train (repeatable)")
    p.add_argument("--out", help="write the result as a complete variant file here (atomically) instead "
                                 "of printing it; needs --preset")
    p.add_argument("--expect-hash", help="with --out: refuse, writing nothing, if the model hash differs")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ConfigError
    from ..variants import list_variants, resolve_variant, variant_hash

    if args.name is None:
        if args.preset or args.overrides or args.out or args.expect_hash:
            raise ConfigError("--preset, --set, --out and --expect-hash need a variant name or file")
        for name in list_variants():
            print(name)
        return 0
    if (args.overrides or args.out) and not args.preset:
        raise ConfigError("--set and --out need --preset (the training preset whose model settings apply)")
    if args.expect_hash and not args.out:
        raise ConfigError("--expect-hash needs --out")
    if args.out:
        from ..training.presets import write_trained_variant

        digest = write_trained_variant(args.name, args.preset, args.out, args.overrides, args.expect_hash)
        print(f"wrote {args.out} (model hash {digest})")
        return 0
    if args.preset:
        from ..training.presets import trained_variant

        resolved = trained_variant(args.name, args.preset, args.overrides)
    else:
        resolved = resolve_variant(args.name)
    resolved["hash"] = variant_hash(resolved)
    print(json.dumps(resolved, indent=2))
    return 0
