# Complexity of every variant at every scale (msnlan complexity): parameters, MACs at the
# 720p-output LR size and at 48x48 (fvcore plus handles for the attention), runtime and memory.
# Independent of training: it measures the architecture the variant file defines.


rule complexity:
    """Parameters, MACs, runtime and peak memory of one variant at one scale."""
    output:
        report=f"{P.results}/complexity/{{variant}}/x{{scale}}.json",
    params:
        variant_file=lambda wc: P.variant(wc.variant)["file"],
        variant_hash=lambda wc: P.variant(wc.variant)["hash"],
        options=complexity_options(),
    threads: config["complexity"]["threads"]
    resources:
        gpu=1 if uses_gpu() else 0,
        mem_mb=config["complexity"]["mem_mb"],
        runtime=config["complexity"]["walltime"],
    log:
        f"{P.results}/logs/complexity/{{variant}}_x{{scale}}.log",
    benchmark:
        f"{P.results}/benchmarks/complexity/{{variant}}_x{{scale}}.tsv"
    shell:
        "{MSNLAN} complexity --variant {params.variant_file:q} --scale {wildcards.scale} "
        "--out {output.report:q} --device {config[device]} {params.options} "
        "> {log:q} 2>&1"
