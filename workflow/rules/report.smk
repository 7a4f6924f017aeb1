# Tables and the HTML report. `msnlan collect` gathers every eval/complexity/run file of the
# results folder into tables/; `msnlan report` renders report/index.html, reading its options
# (the `report:` section, row and column order) from the recorded workflow config. Both are registered
# with Snakemake's report() so that `snakemake --report report.zip` bundles them.

import json


rule record_config:
    """The workflow config in force (after defaults), for the report's settings section."""
    output:
        config=P.workflow_config(),
    log:
        f"{P.results}/logs/record_config.log",
    benchmark:
        f"{P.results}/benchmarks/record_config.tsv"
    conda:
        "../envs/msnlan.yaml"
    params:
        # JSON text so the params trigger compares it exactly; any config change rewrites the file.
        # `variants` lists the selected variants (the report's row order), also when the config
        # leaves it empty (= every file of ablations_dir)
        config=json.dumps({**config, "variants": list(P.variants)}, sort_keys=True),
        sources=config_sources(),
    script:
        "../scripts/record_config.py"


rule collect:
    """tables/summary.csv (one row per method x scale x benchmark) and tables/per_image.csv."""
    input:
        evaluations=P.all_evaluations(),
        complexity=P.all_complexity() if config["complexity"]["enabled"] else [],
        weights=P.all_weights(),
    output:
        summary=report(
            P.table("summary.csv"),
            caption="../report/summary.rst",
            category="Tables",
            labels={"table": "summary"},
        ),
        per_image=report(
            P.table("per_image.csv"),
            caption="../report/per_image.rst",
            category="Tables",
            labels={"table": "per image"},
        ),
    log:
        f"{P.results}/logs/collect.log",
    benchmark:
        f"{P.results}/benchmarks/collect.tsv"
    conda:
        "../envs/msnlan.yaml"
    params:
        results=folder_of("summary", levels=2),
        msnlan=MSNLAN,
    shell:
        "{params.msnlan} collect --results {params.results:q} > {log:q} 2>&1"


rule report:
    """The HTML report: paper-style tables, ablation table, complexity, plots and visual crops."""
    input:
        summary=P.table("summary.csv"),
        per_image=P.table("per_image.csv"),
        config=P.workflow_config(),
    output:
        html=report(
            P.report_index(),
            caption="../report/index.rst",
            category="Report",
            labels={"page": "MSNLAN report"},
        ),
    log:
        f"{P.results}/logs/report.log",
    benchmark:
        f"{P.results}/benchmarks/report.tsv"
    conda:
        "../envs/msnlan.yaml"
    params:
        results=folder_of("html", levels=2),
        msnlan=MSNLAN,
    shell:
        "{params.msnlan} report --results {params.results:q} --config {input.config:q} "
        "--out {output.html:q} > {log:q} 2>&1"
