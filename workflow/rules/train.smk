# Training: every selected variant at every trained scale, once per training seed (`seeds`; with
# several, runs/<variant>/x<s>/seed<k>/). Each job claims one unit of the `gpu` resource, whatever
# its seed, so `--resources gpu=2` runs at most two at once (the training engine leases a distinct
# GPU through lock files); without --resources, or without GPUs, jobs run on what `device` selects.
#
# Rerun triggers: the variant's hash (model settings only, not its description) and the training
# preset and overrides are params, so editing one variant file reruns only that variant's jobs.
# The YAML file is deliberately not an input: touching it, or editing its description, must not
# retrain. final.pt is protected (read-only): after a change that needs retraining, Snakemake stops
# with "Write-protected output files" until you remove the old run folder (see config/README.md).
# The device is a param that is no rerun trigger (common.smk: Unrecorded): moving a finished
# workflow to another device must not retrain (a changed param would).
#
# A preset with stages (the paper preset: 1M iterations at 48x48, then 250k at 64x64) trains one
# job per stage, chained by their inputs: train_stage jobs train every stage but the last (output
# runs/<variant>/x<s>/stage<n>/final.pt, protected), and `train` trains the last stage and writes
# the run's final.pt (the last stage's weights). One job per stage, rather than all stages in one
# job, so that the wall time (train.walltime, e.g. SLURM's 3 days) has to hold one stage, not the
# whole recipe; a job cut by its wall time resumes from the stage's last.pt when rerun. With
# train.job_per_stage false (the CPU demo: one process start per run, not one per stage) the
# `train` job trains every stage.


rule train:
    """Train one variant at one scale and seed (x3/x4 from the x2 weights of that seed if init_from_x2)."""
    input:
        train_data=P.dataset_json(P.train_set),
        val_data=P.dataset_json(P.val_set),
        init=init_checkpoint,
        previous=stages_before_last,
    output:
        weights=protected(P.final_weights("{variant}", "{scale}", P.seed_wildcard)),
    log:
        f"{P.results}/logs/train/{{variant}}_x{{scale}}{seed_tag()}.log",
    benchmark:
        f"{P.results}/benchmarks/train/{{variant}}_x{{scale}}{seed_tag()}.tsv"
    priority: lambda wc: P.train_priority(wc.variant)
    conda:
        "../envs/msnlan.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=1,
        mem_mb=config["train"]["mem_mb"],
        runtime=config["train"]["walltime"],
    params:
        variant_file=lambda wc: P.variant(wc.variant)["file"],
        variant_hash=lambda wc: P.variant(wc.variant)["hash"],
        preset=config["train"]["preset"],
        overrides=train_overrides,
        init=lambda wc, input: " ".join(f"--init-from {shlex.quote(p)}" for p in input.init),
        run_dir=folder_of("weights"),
        train_dir=folder_of("train_data"),
        val_dir=folder_of("val_data"),
        msnlan=MSNLAN,
        device=device(),
    shell:
        "{params.msnlan} train --variant {params.variant_file:q} --scale {wildcards.scale} "
        "--train-data {params.train_dir:q} --val-data {params.val_dir:q} --out {params.run_dir:q} "
        "--preset {params.preset} {params.init} --device {params.device} {params.overrides} "
        "> {log:q} 2>&1"


rule train_stage:
    """Train one stage but the last of a preset with stages (from the previous stage's final weights
    of the same seed)."""
    input:
        train_data=P.dataset_json(P.train_set),
        val_data=P.dataset_json(P.val_set),
        init=init_checkpoint,
        previous=previous_stage,
    output:
        weights=protected(P.stage_weights("{variant}", "{scale}", "{stage}", P.seed_wildcard)),
    log:
        f"{P.results}/logs/train/{{variant}}_x{{scale}}{seed_tag()}_stage{{stage}}.log",
    benchmark:
        f"{P.results}/benchmarks/train/{{variant}}_x{{scale}}{seed_tag()}_stage{{stage}}.tsv"
    priority: lambda wc: P.train_priority(wc.variant)
    conda:
        "../envs/msnlan.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=1,
        mem_mb=config["train"]["mem_mb"],
        runtime=config["train"]["walltime"],
    params:
        variant_file=lambda wc: P.variant(wc.variant)["file"],
        variant_hash=lambda wc: P.variant(wc.variant)["hash"],
        preset=config["train"]["preset"],
        overrides=train_overrides,
        init=lambda wc, input: " ".join(f"--init-from {shlex.quote(p)}" for p in input.init),
        run_dir=folder_of("weights", 2),
        train_dir=folder_of("train_data"),
        val_dir=folder_of("val_data"),
        msnlan=MSNLAN,
        device=device(),
    shell:
        "{params.msnlan} train --variant {params.variant_file:q} --scale {wildcards.scale} "
        "--train-data {params.train_dir:q} --val-data {params.val_dir:q} --out {params.run_dir:q} "
        "--preset {params.preset} {params.init} --device {params.device} {params.overrides} "
        "--stage {wildcards.stage} > {log:q} 2>&1"
