"""Variant files: inheritance, schema validation, clear errors."""
import pytest
import yaml

from msnlan.errors import ConfigError
from msnlan.variants import MODEL_KEYS, components, list_variants, resolve_variant, variant_hash


@pytest.mark.parametrize("name", list_variants())
def test_every_registered_variant_resolves_completely(name):
    resolved = resolve_variant(name)
    assert set(MODEL_KEYS) <= set(resolved["model"])
    assert resolved["name"] == name


def test_ablations_change_only_one_thing():
    base = resolve_variant("msnlan")["model"]
    expected = {"no_msnlab": {"msnlab": False}, "single_scale": {"patch_sizes": [3]},
                "no_dense_skips": {"dense_skips": False}, "rcab": {"block": "rcab"}}
    for name, diff in expected.items():
        model = resolve_variant(name)["model"]
        assert {k: v for k, v in model.items() if base[k] != v} == diff


def _write(tmp_path, name, data):
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize("model,key", [
    ({"bogus": 1}, "model.bogus"),
    ({"n_feats": "64"}, "model.n_feats"),
    ({"patch_sizes": [3, 4]}, "model.patch_sizes.1"),
    ({"patch_sizes": [0]}, "model.patch_sizes.0"),
    ({"block": "rdb"}, "model.block"),
])
def test_bad_file_names_file_and_key(tmp_path, model, key):
    p = _write(tmp_path, "bad", {"_base_": "msnlan", "model": model})
    with pytest.raises(ConfigError) as exc:
        resolve_variant(p)
    assert str(p) in str(exc.value) and key in str(exc.value)


def test_unknown_top_level_key(tmp_path):
    p = _write(tmp_path, "bad", {"_base_": "msnlan", "modle": {"n_feats": 8}})
    with pytest.raises(ConfigError, match="modle"):
        resolve_variant(p)


def test_base_cycle_and_unknown_base(tmp_path):
    _write(tmp_path, "a", {"_base_": "b.yaml"})
    _write(tmp_path, "b", {"_base_": "a.yaml"})
    with pytest.raises(ConfigError, match="cycle"):
        resolve_variant(tmp_path / "a.yaml")
    p = _write(tmp_path, "c", {"_base_": "nonexistent"})
    with pytest.raises(ConfigError, match="nonexistent"):
        resolve_variant(p)


def test_incomplete_variant_without_base(tmp_path):
    p = _write(tmp_path, "partial", {"model": {"n_feats": 8}})
    with pytest.raises(ConfigError, match="lacks key"):
        resolve_variant(p)


def test_mapping_and_overrides_and_hash():
    a = resolve_variant("msnlan", n_feats=16)
    b = resolve_variant({"_base_": "msnlan", "model": {"n_feats": 16}})
    assert a["model"] == b["model"]
    assert variant_hash(a) == variant_hash(b) != variant_hash(resolve_variant("msnlan"))
    with pytest.raises(ConfigError, match="n_feats"):
        resolve_variant("msnlan", n_feats=-1)


def test_components_marks():
    assert components(resolve_variant("msnlan")["model"]) == {
        "msnlab": True, "multi_scale": True, "dense_skips": True, "block": "RMAB"}
    assert components(resolve_variant("single_scale")["model"])["multi_scale"] is False


def test_standard_variants_ship_with_the_package_and_user_files_override_them(tmp_path, monkeypatch):
    from msnlan.paper import PAPER_MODEL
    from msnlan.variants import standard_variants_dir

    standard = sorted(p.stem for p in standard_variants_dir().glob("*.yaml"))
    assert standard == ["msnlan", "no_dense_skips", "no_msnlab", "rcab", "single_scale"]
    assert resolve_variant(standard_variants_dir() / "msnlan.yaml")["model"] == PAPER_MODEL
    monkeypatch.setenv("MSNLAN_ABLATIONS", str(tmp_path))
    _write(tmp_path, "msnlan", {"_base_": "paper", "model": {"n_feats": 32}})
    _write(tmp_path, "mine", {"_base_": "msnlan", "description": "added", "model": {"reduction": 8}})
    assert set(standard) | {"mine"} == set(list_variants())
    assert resolve_variant("msnlan")["model"]["n_feats"] == 32           # the user's file wins
    assert resolve_variant("mine")["model"]["n_feats"] == 32             # ... also as a base
    # a standard file's base is the standard one beside it: the standard variants stay the paper's
    assert resolve_variant("rcab")["model"]["n_feats"] == 64
    assert resolve_variant("paper")["model"] == PAPER_MODEL


def test_checkpoint_conversion_ignores_user_variant_files(tmp_path, monkeypatch):
    from msnlan.models.convert import _expected_shapes

    before = _expected_shapes(2)
    monkeypatch.setenv("MSNLAN_ABLATIONS", str(tmp_path))
    _write(tmp_path, "msnlan", {"_base_": "paper", "model": {"n_feats": 16, "n_resgroups": 2}})
    assert _expected_shapes(2) == before


def test_written_variant_file_resolves_to_the_same_network(tmp_path):
    from msnlan.training.presets import trained_variant
    from msnlan.variants import write_variant_file

    trained = trained_variant("no_msnlab", "demo")
    path = tmp_path / "variants" / "no_msnlab.yaml"
    write_variant_file(path, trained, "# a header\n")
    again = resolve_variant(path)
    assert path.read_text().startswith("# a header\n") and "_base_" not in path.read_text()
    assert again["model"] == trained["model"] and variant_hash(again) == variant_hash(trained)
    assert again["description"] == trained["description"]
