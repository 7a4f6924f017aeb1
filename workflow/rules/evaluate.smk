# Evaluation with the published protocol (msnlan evaluate): every method x scale, one job for all
# benchmarks (one process: torch is imported once per method and scale, not once per benchmark).
# Methods are the variants (their final.pt), "<variant>+" (x8 self-ensemble, same weights), the
# bicubic baseline (no training) and the config's `pretrained:` rows (weights not trained here, at
# the scales they have a checkpoint for). Each job writes <benchmark>.csv and <benchmark>.protocol.json
# for every benchmark; a benchmark interrupted halfway resumes from its partial rows when rerun.
# With several training seeds, every trained method is evaluated per seed (eval/<method>/x<s>/seed<k>/);
# bicubic and the pretrained rows, which no training seed changes, once.


rule evaluate_bicubic:
    """The bicubic baseline: MATLAB-exact imresize upscaling of the LR images."""
    input:
        datasets=benchmark_jsons(),
    output:
        **eval_outputs("bicubic"),
    log:
        f"{P.results}/logs/evaluate/bicubic_x{{scale}}.log",
    benchmark:
        f"{P.results}/benchmarks/evaluate/bicubic_x{{scale}}.tsv"
    priority: PRIORITY["evaluate"]
    conda:
        "../envs/msnlan.yaml"
    threads: 1
    resources:
        mem_mb=config["evaluate"]["mem_mb"],
        runtime=config["evaluate"]["walltime"],
    params:
        datasets=dataset_folders,
        options=eval_options,
        save=lambda wc: save_images_option("bicubic", wc),
        msnlan=MSNLAN,
    shell:
        "{params.msnlan} evaluate --method bicubic --scale {wildcards.scale} --dataset {params.datasets} "
        "--out {output.tables:q} {params.options} {params.save} > {log:q} 2>&1"


rule evaluate:
    """One trained variant ({ensemble} is "" or "+" for x8 self-ensemble) on every benchmark."""
    input:
        weights=P.final_weights("{variant}", "{scale}", P.seed_wildcard),
        # the network as trained (variant + preset model settings): what final.pt holds
        variant=P.trained_variant_file("{variant}"),
        datasets=benchmark_jsons(),
    output:
        **eval_outputs("{variant}{ensemble}", P.seed_wildcard),
    log:
        f"{P.results}/logs/evaluate/{{variant}}{{ensemble}}_x{{scale}}{seed_tag()}.log",
    benchmark:
        f"{P.results}/benchmarks/evaluate/{{variant}}{{ensemble}}_x{{scale}}{seed_tag()}.tsv"
    wildcard_constraints:
        variant=P.variant_pattern(),
    priority: PRIORITY["evaluate"]
    conda:
        "../envs/msnlan.yaml"
    threads: config["evaluate"]["threads"]
    resources:
        gpu=1 if uses_gpu() else 0,
        mem_mb=config["evaluate"]["mem_mb"],
        runtime=config["evaluate"]["walltime"],
    params:
        variant_hash=lambda wc: P.variant(wc.variant)["hash"],
        datasets=dataset_folders,
        options=eval_options,
        save=lambda wc: save_images_option(f"{wc.variant}{wc.ensemble}", wc),
        msnlan=MSNLAN,
        device=device(),
    shell:
        "{params.msnlan} evaluate --method {input.variant:q} --checkpoint {input.weights:q} "
        "--scale {wildcards.scale} --dataset {params.datasets} --out {output.tables:q} "
        "{params.options} {params.save} --device {params.device} > {log:q} 2>&1"


rule evaluate_pretrained:
    """A pretrained row's checkpoint (a file, or a verified download) on every benchmark; the
    protocol records its label and source."""
    input:
        weights=lambda wc: P.pretrained_checkpoint(wc.pretrained, wc.scale),
        datasets=benchmark_jsons(),
    output:
        **eval_outputs("{pretrained}{ensemble}"),
    log:
        f"{P.results}/logs/evaluate/{{pretrained}}{{ensemble}}_x{{scale}}.log",
    benchmark:
        f"{P.results}/benchmarks/evaluate/{{pretrained}}{{ensemble}}_x{{scale}}.tsv"
    wildcard_constraints:
        pretrained=P.pretrained_pattern(),
    priority: PRIORITY["evaluate"]
    conda:
        "../envs/msnlan.yaml"
    threads: config["evaluate"]["threads"]
    resources:
        gpu=1 if uses_gpu() else 0,
        mem_mb=config["evaluate"]["mem_mb"],
        runtime=config["evaluate"]["walltime"],
    params:
        variant_file=lambda wc: P.pretrained_row(wc.pretrained)["variant_file"],
        row=pretrained_options,
        datasets=dataset_folders,
        options=eval_options,
        save=lambda wc: save_images_option(f"{wc.pretrained}{wc.ensemble}", wc),
        msnlan=MSNLAN,
        device=device(),
    shell:
        "{params.msnlan} evaluate --method {params.variant_file:q} --checkpoint {input.weights:q} "
        "{params.row} --scale {wildcards.scale} --dataset {params.datasets} --out {output.tables:q} "
        "{params.options} {params.save} --device {params.device} > {log:q} 2>&1"


# "bicubic" is never a variant (make_plan refuses the name), so its own rule wins
ruleorder: evaluate_bicubic > evaluate
