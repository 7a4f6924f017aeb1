# Complexity of every variant at every scale (msnlan complexity, one job per variant): parameters,
# MACs at the 720p-output LR size and at 48x48 (fvcore plus handles for the attention), runtime
# and memory.
#
# What is measured is the network as trained: the variant with the training preset's model
# settings (and train.overrides' model.* keys) applied. For the paper preset that is the variant
# file itself; for the demo preset it is the tiny network whose PSNR the demo report shows.


rule trained_variant:
    """A complete variant file of the trained network (variant + preset model settings)."""
    output:
        variant=P.trained_variant_file("{variant}"),
    log:
        f"{P.results}/logs/trained_variant/{{variant}}.log",
    benchmark:
        f"{P.results}/benchmarks/trained_variant/{{variant}}.tsv"
    priority: PRIORITY["complexity"]
    conda:
        "../envs/msnlan.yaml"
    params:
        variant_file=lambda wc: P.variant(wc.variant)["file"],
        trained_hash=lambda wc: P.variant(wc.variant)["trained_hash"],
        preset=config["train"]["preset"],
        overrides=train_override_items(config),
    script:
        "../scripts/trained_variant.py"


rule complexity:
    """Parameters, MACs, runtime and peak memory of one trained network at every scale: one process
    per variant, so torch's import and the FLOP counter's start-up are paid once, not per scale."""
    input:
        variant=P.trained_variant_file("{variant}"),
    output:
        reports=[P.complexity_json("{variant}", s) for s in P.scales],
    log:
        f"{P.results}/logs/complexity/{{variant}}.log",
    benchmark:
        f"{P.results}/benchmarks/complexity/{{variant}}.tsv"
    priority: PRIORITY["complexity"]
    conda:
        "../envs/msnlan.yaml"
    threads: config["complexity"]["threads"]
    resources:
        gpu=1 if uses_gpu() else 0,
        mem_mb=config["complexity"]["mem_mb"],
        runtime=config["complexity"]["walltime"],
    params:
        trained_hash=lambda wc: P.variant(wc.variant)["trained_hash"],
        scales=" ".join(map(str, P.scales)),
        options=complexity_options(),
        msnlan=MSNLAN,
        device=device(),
    shell:
        "{params.msnlan} complexity --variant {input.variant:q} --scale {params.scales} "
        "--out {output.reports:q} --device {params.device} {params.options} "
        "> {log:q} 2>&1"
