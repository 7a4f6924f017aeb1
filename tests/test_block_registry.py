"""Block registries: the schema, the network, the ablation table and complexity counting follow them."""
import pytest
import torch
from torch import nn

from msnlan.complexity.msnlab_hooks import find_msnlabs
from msnlan.errors import ConfigError
from msnlan.models.blocks import conv
from msnlan.models.network import build_model
from msnlan.models.registry import ATTENTION_BLOCKS, TRUNK_BLOCKS, AttentionBlock, TrunkBlock
from msnlan.variants import component_columns, components, resolve_variant

TINY = {"n_feats": 8, "n_resgroups": 2, "n_resblocks": 1, "reduction": 4}


class PlainBlock(nn.Module):
    def __init__(self, n_feats: int, reduction: int) -> None:
        super().__init__()
        self.body = conv(n_feats, n_feats, 3)

    def forward(self, x):
        return x + self.body(x)


@pytest.fixture
def registered():
    TRUNK_BLOCKS["plain"] = TrunkBlock("plain", "Plain", PlainBlock)
    ATTENTION_BLOCKS["gate"] = AttentionBlock("gate", "Gate", lambda s: nn.Conv2d(s["n_feats"], s["n_feats"], 1))
    yield
    TRUNK_BLOCKS.pop("plain")
    ATTENTION_BLOCKS.pop("gate")


def test_registered_blocks_reach_schema_network_and_ablation_columns(registered):
    resolved = resolve_variant({"_base_": "msnlan", "model": {**TINY, "block": "plain", "msnlab": False,
                                                               "gate": True}})
    model = build_model(resolved, 2)
    assert isinstance(model.groups[0].blocks[0], PlainBlock) and isinstance(model.gate, nn.Conv2d)
    assert model(torch.rand(1, 3, 12, 12) * 255).shape == (1, 3, 24, 24)
    assert ("gate", "Gate") in component_columns()
    assert components(resolved["model"]) == {"msnlab": False, "multi_scale": False, "gate": True,
                                             "dense_skips": True, "block": "Plain"}
    # not declared quadratic: complexity traces it like any layer
    assert find_msnlabs(model) == []


def test_unregistered_block_is_refused_naming_the_registered_ones():
    with pytest.raises(ConfigError, match=r"model.block.*'rdb' is not one of \['rcab', 'rmab'\]"):
        resolve_variant({"_base_": "msnlan", "model": {"block": "rdb"}})


def test_complexity_finds_attention_by_its_declared_property():
    model = build_model({"_base_": "msnlan", "model": TINY}, 2)
    assert [name for name, _ in find_msnlabs(model)] == ["msnlab"]
    assert ATTENTION_BLOCKS["msnlab"].quadratic
