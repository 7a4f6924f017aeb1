"""`msnlan demo-data`: write the embedded demo datasets (scikit-image's bundled images)."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("demo-data", help="write the demo sets DemoTrain, DemoVal, DemoA, DemoB (<Set>/HR/*.png) "
                                         "from scikit-image's bundled images")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.demo import write_demo_datasets

    record = write_demo_datasets(args.out)
    for name, images in record["sets"].items():
        print(f"{name}: {len(images)} images")
    return 0
