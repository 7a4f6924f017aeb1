"""Snakemake script of rule trained_variant: write the trained network as a complete variant file.

The variant file with the training preset's model settings (plus train.overrides' model.* keys)
applied, resolved exactly as `msnlan train` resolves it, so that `msnlan complexity` measures the
network that was trained. The file is named after the variant, so results keep its name.
"""
from msnlan.training.presets import load_preset, trained_variant
from msnlan.variants import variant_hash, write_variant_file


def main(snakemake) -> None:
    preset = load_preset(snakemake.params.preset, overrides=list(snakemake.params.overrides))
    resolved = trained_variant(snakemake.params.variant_file, preset)
    digest = variant_hash(resolved)
    if digest != snakemake.params.trained_hash:
        raise RuntimeError(f"{snakemake.params.variant_file} changed while the workflow ran "
                           f"(hash {digest}, planned {snakemake.params.trained_hash}); run it again")
    if preset["settings"].get("model"):
        resolved["description"] += f" [as trained with preset {preset['name']}]"
    header = (f"# written by the workflow: {snakemake.params.variant_file} with the model settings of "
              f"preset {preset['name']!r} applied; model hash {digest}\n")
    write_variant_file(snakemake.output.variant, resolved, header)
    with open(snakemake.log[0], "w") as log:
        print(f"wrote {snakemake.output.variant} (model hash {digest})", file=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake)
