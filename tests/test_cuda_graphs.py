"""CUDA graphs for the training passes (preset key `cuda_graphs`): the setting, the engine's wiring
(checked on the CPU with torch's capture replaced by a recorder) and, on a CUDA machine, graphed
steps against eager ones."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from msnlan.errors import ConfigError, MsnlanError
from msnlan.training import engine
from msnlan.training.checkpoint import build_network
from msnlan.training.cuda_graphs import capture_training_passes, use_cuda_graphs
from msnlan.training.presets import load_preset, trained_variant
from msnlan.variants import list_variants, resolve_variant

from test_train_reliability import interrupted_at
from test_training import TINY, assert_same_weights, data, one_thread, run, weights  # noqa: F401  (fixtures)

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_the_setting_resolves_per_device():
    assert use_cuda_graphs("auto", CUDA) and not use_cuda_graphs("auto", CPU)
    assert use_cuda_graphs(True, CUDA) and not use_cuda_graphs(False, CUDA) and not use_cuda_graphs(False, CPU)
    with pytest.raises(ConfigError, match=r"cuda_graphs: CUDA graphs need a CUDA device, but this run trains on cpu"):
        use_cuda_graphs(True, CPU)
    with pytest.raises(ConfigError, match=r"cuda_graphs: 'sometimes' is not one of true, false, auto"):
        use_cuda_graphs("sometimes", CUDA)
    with pytest.raises(ConfigError, match="'cuda_graphs'"):
        load_preset("demo", ["cuda_graphs=sometimes"])
    for preset in ("demo", "paper", "paper_stage1"):  # off until measured on a GPU; existing runs keep their config
        assert "cuda_graphs" not in load_preset(preset)["settings"]


def test_true_on_the_cpu_fails_before_the_run_folder_is_written(data, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="CUDA graphs need a CUDA device"):
        run(data, out, overrides={"cuda_graphs": True})
    assert not out.exists()


def test_auto_on_the_cpu_trains_eagerly_and_says_so(data, tmp_path):
    run(data, tmp_path / "run", overrides={"iterations": 1, "cuda_graphs": "auto"})
    assert json.loads((tmp_path / "run" / "environment.json").read_text())["cuda_graphs"] is False


def test_a_run_resumes_with_the_setting_changed(data, tmp_path, monkeypatch):
    """The graphs replay an eager step's kernels: the setting is not part of the run's identity."""
    ref, out = tmp_path / "ref", tmp_path / "run"
    run(data, ref, overrides={"iterations": 8})
    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        interrupted_at(m, 4)
        run(data, out, overrides={"iterations": 8})
    run(data, out, overrides={"iterations": 8, "cuda_graphs": "auto"})
    assert_same_weights(weights(ref / "final.pt"), weights(out / "final.pt"))


class _Recorder:
    """Stands in for torch.cuda.make_graphed_callables on the CPU: records each call and leaves the
    module's forward pass as it was (torch replaces it with the graph replay)."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, module, sample_args, allow_unused_input=False):
        (sample,) = sample_args
        self.calls.append({"training": module.training, "shape": tuple(sample.shape),
                           "channels_last": sample.is_contiguous(memory_format=torch.channels_last)
                           and not sample.is_contiguous(),
                           "requires_grad": sample.requires_grad, "allow_unused_input": allow_unused_input,
                           "autocast": torch.is_autocast_enabled("cpu"),
                           "autocast_cache": torch.is_autocast_cache_enabled(),
                           "weights": {k: v.clone() for k, v in module.state_dict().items()}})
        return module


@pytest.mark.parametrize("amp", ["none", "bf16"])
def test_the_engine_captures_once_per_session_on_its_first_batch(data, tmp_path, monkeypatch, amp):
    recorder = _Recorder()
    monkeypatch.setattr(torch.cuda, "make_graphed_callables", recorder)
    # the CPU stands in for CUDA: the wiring is what is tested here
    monkeypatch.setattr(engine, "use_cuda_graphs", lambda setting, device, source="cuda_graphs": bool(setting))
    out = tmp_path / "run"
    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        interrupted_at(m, 4)
        run(data, out, overrides={"iterations": 8, "cuda_graphs": True, "amp": amp, "channels_last": True})
    assert len(recorder.calls) == 1
    call = recorder.calls[0]
    assert call["training"] and call["shape"] == (2, 3, 12, 12) and call["channels_last"]
    assert not call["requires_grad"] and call["allow_unused_input"]
    # capture happens under the step's autocast, without its cache (which torch refuses to capture)
    assert call["autocast"] == (amp == "bf16") and (not call["autocast_cache"] or amp == "none")
    assert json.loads((out / "environment.json").read_text())["cuda_graphs"] is True
    # captured before the first step: the weights were still the initial ones
    preset = load_preset("demo", {**TINY, "amp": amp})
    torch.manual_seed(preset["settings"]["seed"])
    initial = build_network(trained_variant("msnlan", preset), 2).state_dict()
    assert_same_weights(call["weights"], initial)
    # a new session captures anew
    run(data, out, overrides={"iterations": 8, "cuda_graphs": True, "amp": amp, "channels_last": True})
    assert len(recorder.calls) == 2 and not torch.equal(recorder.calls[1]["weights"]["head.weight"],
                                                        initial["head.weight"])


def test_capture_refuses_other_batch_shapes_in_training_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "make_graphed_callables", _Recorder())
    model = torch.nn.Conv2d(3, 3, 3, padding=1).train()
    capture_training_passes(model, torch.zeros(2, 3, 8, 8))
    model(torch.zeros(2, 3, 8, 8))
    with pytest.raises(MsnlanError, match=r"shape \(1, 3, 8, 8\).*batches of shape \(2, 3, 8, 8\)"):
        model(torch.zeros(1, 3, 8, 8))  # would broadcast into the captured input
    model.eval()
    assert model(torch.zeros(1, 3, 20, 20)).shape == (1, 3, 20, 20)  # evaluation runs the eager pass
    with pytest.raises(MsnlanError, match="training mode"):
        capture_training_passes(model, torch.zeros(2, 3, 8, 8))
    with pytest.raises(MsnlanError, match="must not require gradients"):
        capture_training_passes(model.train(), torch.zeros(2, 3, 8, 8, requires_grad=True))


#: ops that wait for the GPU (a value read back to Python: item(), bool(), a mask's nonzero count)
#: or copy a tensor made on the host: a CUDA graph capture fails on either
_CAPTURE_BREAKERS = ("_local_scalar_dense", "nonzero", "is_nonzero", "equal", "masked_select", "unique",
                     "lift_fresh", "lift_fresh_copy", "item")


@pytest.mark.parametrize("form", ["fast", "direct"])
@pytest.mark.parametrize("variant", list_variants())
def test_training_passes_read_nothing_back_from_the_device(variant, form):
    """Every registered variant's forward and backward passes, in each attention form, issue no op
    that synchronises with the device or copies host data in: what a CUDA graph capture needs
    (recorded on the CPU with a dispatch mode; `.item()` in a forward pass would fail here)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from msnlan.models.msnlab import configure_attention

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.seen.add(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    torch.manual_seed(0)
    resolved = resolve_variant(variant, n_feats=8, n_resgroups=2, n_resblocks=1, reduction=4)
    model = build_network(resolved, 2).train()
    configure_attention(model, form)
    x, target = torch.rand(2, 3, 12, 12), torch.rand(2, 3, 24, 24)
    with Ops() as ops:
        F.l1_loss(model(x), target).backward()
    assert "convolution" in ops.seen or "mkldnn_convolution" in ops.seen, sorted(ops.seen)  # the mode saw the passes
    assert not ops.seen & set(_CAPTURE_BREAKERS), sorted(ops.seen & set(_CAPTURE_BREAKERS))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (CUDA graphs)")
@pytest.mark.parametrize("mode", ["fast", "direct"])
@pytest.mark.parametrize("amp", ["none", "bf16"])
def test_cuda_graph_steps_equal_eager_steps(mode, amp):
    """On CUDA: a few training steps with captured passes give the eager steps' weights."""
    from msnlan.models.msnlab import configure_attention

    resolved = resolve_variant("msnlan", n_feats=16, n_resgroups=2, n_resblocks=1, reduction=4)
    results = []
    for graphs in (False, True):
        torch.manual_seed(0)
        model = build_network(resolved, 2).to(CUDA).to(memory_format=torch.channels_last).train()
        configure_attention(model, mode)
        settings = load_preset("demo")["settings"]
        optimizer = engine.build_optimizer(model, settings, CUDA)
        autocast = engine.autocast_context(amp, CUDA, cache=not graphs)
        gen = torch.Generator().manual_seed(1)
        batches = [(torch.rand(4, 3, 16, 16, generator=gen), torch.rand(4, 3, 32, 32, generator=gen)) for _ in range(4)]
        for i, (lr, hr) in enumerate(batches):
            lr = lr.to(CUDA).contiguous(memory_format=torch.channels_last)
            if graphs and i == 0:
                with autocast:
                    capture_training_passes(model, lr)
            engine.train_step(model, optimizer, None, lr, hr.to(CUDA), autocast)
        torch.cuda.synchronize()
        results.append({k: v.float().cpu() for k, v in model.state_dict().items()})
    for k in results[0]:
        torch.testing.assert_close(results[1][k], results[0][k], rtol=1e-5, atol=1e-6, msg=k)
