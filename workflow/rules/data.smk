# Data: the embedded demo sets, downloads of public archives (checked against recorded sha256
# sums), and `msnlan prepare` of every dataset (LR images, manifest, cache; dataset.json last).


rule demo_data:
    """The embedded demo sets (scikit-image's bundled images) for configs that name demo:<set>."""
    output:
        sets=directory(P.demo_dir()),
    log:
        f"{P.results}/logs/demo_data.log",
    benchmark:
        f"{P.results}/benchmarks/demo_data.tsv"
    priority: PRIORITY["data"]
    conda:
        "../envs/msnlan.yaml"
    params:
        msnlan=MSNLAN,
    shell:
        "{params.msnlan} demo-data --out {output.sets:q} > {log:q} 2>&1"


rule download_archive:
    """Fetch one archive of the checksums table (continuing an interrupted download); refuse it
    unless its size and sha256 match the recorded ones, or no sum is recorded and
    allow_unverified_downloads is set (the sum is then written)."""
    output:
        archive=f"{P.downloads_dir}/archives/{{archive}}",
        sha256=f"{P.downloads_dir}/archives/{{archive}}.sha256",
    log:
        f"{P.downloads_dir}/logs/download_{{archive}}.log",
    benchmark:
        f"{P.downloads_dir}/benchmarks/download_{{archive}}.tsv"
    priority: PRIORITY["data"]
    retries: 2
    conda:
        "../envs/msnlan.yaml"
    params:
        url=lambda wc: archive_row(wc)["url"],
        expected=lambda wc: archive_row(wc)["sha256"] or "unknown",
        size=lambda wc: archive_row(wc)["bytes"] or "unknown",
        allow_unverified=config["allow_unverified_downloads"],
        checksums=config["downloads"]["checksums"],
    script:
        "../scripts/download_archive.py"


rule unpack_archive:
    """Unpack a verified archive into the downloads folder; checks it provides what the table says."""
    input:
        archive=f"{P.downloads_dir}/archives/{{archive}}",
        sha256=f"{P.downloads_dir}/archives/{{archive}}.sha256",
    output:
        done=f"{P.downloads_dir}/.unpacked/{{archive}}.done",
    log:
        f"{P.downloads_dir}/logs/unpack_{{archive}}.log",
    benchmark:
        f"{P.downloads_dir}/benchmarks/unpack_{{archive}}.tsv"
    priority: PRIORITY["data"]
    conda:
        "../envs/msnlan.yaml"
    params:
        into=folder_of("archive", levels=2),
        provides=lambda wc: archive_row(wc)["provides"],
    script:
        "../scripts/unpack_archive.py"


rule prepare:
    """LR images (MATLAB-exact bicubic), manifest and cache of one dataset at every needed scale."""
    input:
        unpack(prepare_input),
    output:
        dataset=P.dataset_json("{dataset}"),
    log:
        f"{P.results}/logs/prepare/{{dataset}}.log",
    benchmark:
        f"{P.results}/benchmarks/prepare/{{dataset}}.tsv"
    priority: PRIORITY["data"]
    conda:
        "../envs/msnlan.yaml"
    threads: 1
    params:
        source=lambda wc: P.dataset_source(wc.dataset),
        out=folder_of("dataset"),
        scales=" ".join(map(str, P.data_scales)),
        drop_alpha="--drop-alpha" if config["drop_alpha"] else "",
        msnlan=MSNLAN,
    shell:
        "{params.msnlan} prepare --dataset {params.source:q} --scales {params.scales} "
        "--out {params.out:q} {params.drop_alpha} > {log:q} 2>&1"
