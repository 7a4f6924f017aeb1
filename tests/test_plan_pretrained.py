"""The config's `pretrained:` rows in the plan (msnlan.plan): schema, checks, the jobs they add, the
downloads of checkpoints given by URL, and the wildcard constraints that keep them apart from variants."""
from __future__ import annotations

import re

import pytest

from msnlan.errors import ConfigError
from msnlan.plan import PlanError, make_plan
from test_plan import tiny_config

SHA = "0123456789abcdef" * 4


def row(**changes) -> dict:
    base = {"name": "msnlan_authors", "label": "MSNLAN (authors' weights)", "variant": "msnlan",
            "source": "Wu et al. 2023, released weights", "checkpoints": {"x2": {"url": "https://example.org/x2.pt",
                                                                                   "sha256": SHA}}}
    base.update(changes)
    return base


def test_a_pretrained_row_adds_its_evaluations(tmp_path):
    weights = tmp_path / "w3.pt"
    weights.write_bytes(b"x")
    cfg = tiny_config(tmp_path, scales=[2, 3], evaluate={"self_ensemble": ["msnlan_authors"]},
                      pretrained=[row(checkpoints={"x2": {"url": "https://example.org/dl/MSNLAN_x2.pth", "sha256": SHA},
                                                   "x4": {"path": str(weights)}})])
    plan = make_plan(cfg, "tiny.yaml")
    assert plan.methods() == ["bicubic", "msnlan", "no_msnlab", "msnlan_authors", "msnlan_authors+"]
    # only at the evaluated scales it has a checkpoint for (x4 is not evaluated, x3 has none)
    assert plan.method_scales("msnlan_authors+") == [2] and plan.method_scales("msnlan") == [2, 3]
    evaluations = plan.all_evaluations()
    assert plan.eval_table("msnlan_authors+", 2, "DemoA") in evaluations
    assert plan.eval_table("msnlan_authors", 3, "DemoA") not in evaluations
    assert plan.eval_table("msnlan", 3, "DemoA") in evaluations
    # the URL goes through the download rule's table, checked against the given sha256
    target = plan.pretrained_checkpoint("msnlan_authors", 2)
    assert target == "data/archives/pretrained_msnlan_authors_x2.pth"
    assert plan.archives["pretrained_msnlan_authors_x2.pth"] == {
        "url": "https://example.org/dl/MSNLAN_x2.pth", "sha256": SHA, "bytes": None, "provides": [],
        "note": "checkpoint x2 of pretrained row 'msnlan_authors'"}
    assert plan.pretrained_checkpoint("msnlan_authors", 4) == str(weights)
    assert plan.pretrained_row("msnlan_authors")["variant_file"].endswith("ablations/msnlan.yaml")
    with pytest.raises(PlanError, match="no checkpoint for x3"):
        plan.pretrained_checkpoint("msnlan_authors", 3)
    with pytest.raises(PlanError, match="unknown pretrained row 'nope'"):
        plan.pretrained_row("nope")


def test_wildcard_patterns_keep_variants_and_pretrained_rows_apart(tmp_path):
    plan = make_plan(tiny_config(tmp_path, pretrained=[row()]), "tiny.yaml")
    variant, pretrained = re.compile(plan.variant_pattern()), re.compile(plan.pretrained_pattern())
    assert all(variant.fullmatch(v) for v in ("msnlan", "no_msnlab"))
    assert not variant.fullmatch("msnlan_authors") and not variant.fullmatch("bicubic")
    assert pretrained.fullmatch("msnlan_authors") and not pretrained.fullmatch("msnlan")
    none = make_plan(tiny_config(tmp_path), "tiny.yaml")
    assert none.pretrained == {} and not re.compile(none.pretrained_pattern()).fullmatch("msnlan")
    assert none.methods() == ["bicubic", "msnlan", "no_msnlab"]


@pytest.mark.parametrize("change, message", [
    ({"checkpoints": {"x2": {"url": "https://example.org/x2.pt"}}}, "key 'pretrained.0.checkpoints.x2'"),
    ({"checkpoints": {"x2": {"url": "https://e.org/a.pt", "sha256": "abc"}}}, "key 'pretrained.0.checkpoints.x2'"),
    ({"checkpoints": {"2": {"path": "a.pt"}}}, "key 'pretrained.0.checkpoints'"),
    ({"name": "has space"}, "key 'pretrained.0.name'"),
    ({"label": None}, "missing key(s) 'pretrained.0.label'"),
    ({"weights": "a.pt"}, "unknown key 'pretrained.0.weights'"),
])
def test_bad_rows_are_named_by_key(tmp_path, change, message):
    entry = {k: v for k, v in row(**change).items() if v is not None}
    with pytest.raises(ConfigError) as exc:
        tiny_config(tmp_path, pretrained=[entry])
    assert message in str(exc.value), str(exc.value)


def test_plan_checks_of_rows(tmp_path):
    def plan_error(**kw) -> str:
        with pytest.raises(PlanError) as exc:
            make_plan(tiny_config(tmp_path, **kw), "tiny.yaml")
        return str(exc.value)

    assert "pretrained[0]'.name: 'no_msnlab' is already a variant" in plan_error(pretrained=[row(name="no_msnlab")])
    assert "is already a variant" in plan_error(pretrained=[row(name="bicubic")])
    assert "is already a variant" in plan_error(pretrained=[row(name="rcab")])  # a standard variant
    assert "is already a variant" in plan_error(pretrained=[row(), row()])
    assert "pretrained[0]'.variant: no variant 'nope'" in plan_error(pretrained=[row(variant="nope")])
    missing = plan_error(pretrained=[row(checkpoints={"x2": {"path": str(tmp_path / "gone.pt")}})])
    assert "pretrained[0]'.checkpoints.x2: weights file" in missing and "gone.pt" in missing
    assert "none of its scales (x3) is evaluated" in plan_error(
        pretrained=[row(checkpoints={"x3": {"url": "https://e.org/a.pt", "sha256": SHA}})])
    assert "'evaluate.self_ensemble': 'other'" in plan_error(pretrained=[row()],
                                                             evaluate={"self_ensemble": ["other"]})
    # a standard variant not in the ablations folder is found in the package
    plan = make_plan(tiny_config(tmp_path, pretrained=[row(variant="rcab")]), "tiny.yaml")
    assert plan.pretrained_row("msnlan_authors")["variant_file"].endswith("standard_variants/rcab.yaml")
    # self_ensemble: true covers the pretrained rows too
    plan = make_plan(tiny_config(tmp_path, pretrained=[row()], evaluate={"self_ensemble": True}), "tiny.yaml")
    assert "msnlan_authors+" in plan.methods()


def test_shipped_configs_fetch_no_weights_and_paper_yaml_documents_the_row():
    import yaml

    from msnlan.config import validate_config
    from test_plan import REPO

    for name in ("config.yaml", "paper.yaml", "t91.yaml"):
        cfg = validate_config(yaml.safe_load((REPO / "config" / name).read_text()), name)
        assert cfg["pretrained"] == [], name
    # the commented example of config/paper.yaml is a valid row once uncommented
    text = (REPO / "config" / "paper.yaml").read_text()
    block = []
    for line in text[text.index("# pretrained:\n"):].splitlines():
        if not line.startswith("#"):
            break
        block.append(line[2:])
    example = yaml.safe_load("\n".join(block))
    cfg = validate_config({**yaml.safe_load(text), **example}, "paper.yaml (example row)")
    row = cfg["pretrained"][0]
    assert row["variant"] == "msnlan" and set(row["checkpoints"]) == {"x2", "x3", "x4"}
    assert "github.com/kbzhang0505/MSNLAN" in text and "sha256" in text


def test_with_several_seeds_a_pretrained_row_is_evaluated_once(tmp_path):
    # released weights have no training seed here: no seed level, like bicubic; the variants get one
    cfg = tiny_config(tmp_path, seeds=[1, 2], evaluate={"self_ensemble": ["msnlan_authors"]}, pretrained=[row()])
    plan = make_plan(cfg, "tiny.yaml")
    tables = [p for p in plan.all_evaluations() if p.endswith(".csv")]
    assert [p for p in tables if "/msnlan_authors" in p] == ["results/tiny/eval/msnlan_authors/x2/DemoA.csv",
                                                               "results/tiny/eval/msnlan_authors+/x2/DemoA.csv"]
    assert plan.method_seeds("msnlan_authors+") == [None] and plan.method_seeds("msnlan") == [1, 2]
    assert "results/tiny/eval/msnlan/x2/seed2/DemoA.csv" in tables
