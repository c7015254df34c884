"""Greedy allocation's ``LayerReplay`` gives the search the whole-layer replay's errors, so the same curve, on every
supported family and each layer with its own call kwargs; a step recomputes only what the last pick changed and the
memo stays bounded; an interrupted search resumes at the first layer it lacks."""

import copy
from types import SimpleNamespace

import pytest
import torch
from transformers import (Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM)

from experiments.bench.greedy import Recorder, WholeLayerReplay, largest_relative_difference
from tests.wina.test_transform import COMMON, _random_norms_
from wina import SparsityError, allocate, build_config, sparsify_
from wina.calibrate import first_output
from wina.targets import decoder_layers

FAMILIES = {
    "llama": lambda: LlamaForCausalLM(LlamaConfig(**COMMON)),
    "qwen2": lambda: Qwen2ForCausalLM(Qwen2Config(**COMMON)),  # q/k/v biases
    # post-norms, q/k norms; a sliding layer (window 8 < 32 positions) then a global one: other masks and rotary
    "gemma3": lambda: Gemma3ForCausalLM(Gemma3TextConfig(**COMMON, head_dim=16, sliding_window=8,
                                                         layer_types=["sliding_attention", "full_attention"])),
}
METHODS = {
    "teal-topk": ("teal", dict(mask="topk")),
    "teal-threshold": ("teal", dict(mask="threshold")),
    "wina": ("wina", dict()),  # the transform, weight-informed scores on k and gate
    "rsparse": ("rsparse", dict(mask="topk", alpha=0.9)),  # a low-rank term for the dropped channels
}
SEARCH = dict(allocation="greedy", greedy_samples=2, greedy_step=0.1, greedy_max=0.6, sparsity=0.5)
TOLERANCE = 1e-5  # relative, on every trial's error; the picked projections must be identical


def _model(family: str):
    torch.manual_seed(0)
    return _random_norms_(FAMILIES[family]())


def _search(model, method: str, tokens, cache_dir, replay, monkeypatch) -> tuple[list, list[Recorder]]:
    """Curves (as the calibration cache keeps them) and each layer's recorded errors, with ``replay`` in the search."""
    recorders = []

    def recorded(*args):
        recorders.append(Recorder(replay(*args).errors))
        return SimpleNamespace(errors=recorders[-1])

    name, fields = METHODS[method]
    with monkeypatch.context() as m:
        m.setattr(allocate, "LayerReplay", recorded)
        sparsify_(copy.deepcopy(model), build_config(name, {**fields, **SEARCH}), tokens, cache_dir=cache_dir)
    (file,) = (cache_dir / "calibration").glob("*.pt")
    return torch.load(file, weights_only=True)["curves"], recorders


@pytest.fixture(params=["one_trial_at_a_time", "trials_batched"])
def grouping(request, monkeypatch):
    """Both ways a replay runs a step's trials (one at a time on a CPU, batched on a GPU), here on the CPU."""
    if request.param == "trials_batched":
        monkeypatch.setattr(allocate.LayerReplay, "_groups", lambda self, trials: [trials])
    return request.param


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("family", FAMILIES)
def test_replay_gives_the_whole_layer_replays_curve(family, method, grouping, tmp_path, monkeypatch):
    model = _model(family)
    tokens = torch.randint(0, 97, (4, 32))
    ref, ref_errors = _search(model, method, tokens, tmp_path / "ref", WholeLayerReplay, monkeypatch)
    new, new_errors = _search(model, method, tokens, tmp_path / "new", allocate.LayerReplay, monkeypatch)
    assert new == ref
    assert len(new) == 2 and all(len(curve) > 5 for curve in new)
    for a, b in zip(ref_errors, new_errors, strict=True):
        assert [trials for trials, _ in a.calls] == [trials for trials, _ in b.calls]
        assert largest_relative_difference(a, b) <= TOLERANCE


def test_the_search_replays_each_layer_with_its_own_kwargs(monkeypatch):
    """At level 0 each replayed layer gives the model's own output of that layer: Gemma3's global layer too."""
    model, tokens = _model("gemma3"), torch.randint(0, 97, (2, 32))
    outputs, replays = [], []
    hooks = [layer.register_forward_hook(lambda module, args, out: outputs.append(first_output(out)))
             for layer in decoder_layers(model)]
    with torch.no_grad():
        model(tokens)
    for hook in hooks:
        hook.remove()
    replay = allocate.LayerReplay
    monkeypatch.setattr(allocate, "LayerReplay", lambda *args: replays.append(replay(*args)) or replays[-1])
    sparsify_(copy.deepcopy(model), build_config("teal", dict(mask="topk", **SEARCH)), tokens)
    for out, r in zip(outputs, replays, strict=True):
        torch.testing.assert_close(r.dense, out[:, r.start:], rtol=1e-5, atol=1e-5)


def _layer0_replay(model):
    from wina.api import _install
    from wina.calibrate import capture_layer_io
    from wina.gated import TopKGate
    from wina.targets import linear_targets

    inputs, kwargs = capture_layer_io(model, torch.randint(0, 97, (2, 32)), batch_size=2)
    targets = [t for t in linear_targets(model) if t.layer == 0]
    modules = _install(targets, {t.key: TopKGate() for t in targets})
    gated = {t.kind: modules[t.key] for t in targets}
    return allocate.LayerReplay(decoder_layers(model)[0], gated, inputs[0][0], kwargs[0][0]), gated


def test_replay_errors_follow_the_gates():
    """Zero at level 0, positive and growing as any one projection is sparsified."""
    from wina.targets import KINDS

    replay, _ = _layer0_replay(_model("llama"))
    zero = {k: 0.0 for k in KINDS}
    assert replay.errors([zero]) == [0.0]
    for kind in KINDS:
        low, high = replay.errors([{**zero, kind: 0.25}, {**zero, kind: 0.75}])
        assert 0.0 < low < high, kind


@pytest.mark.parametrize("family, mlp_norm", [("llama", "post_attention_layernorm"), ("qwen2", "post_attention_layernorm"),
                                              ("gemma3", "pre_feedforward_layernorm")])  # gemma3 has both names
def test_the_replay_memoizes_the_norm_the_mlp_reads(family, mlp_norm):
    replay, _ = _layer0_replay(_model(family))
    assert replay.recalls[allocate.MLP_NORM].module is getattr(replay.layer, mlp_norm)


RECOMPUTED_AFTER = {  # the last pick -> what a step of 7 trials computes: projection -> trials
    "down": {"down": 7},  # every trial's down level is new to it; nothing upstream changed
    "gate": {"gate": 5, "down": 7},  # gate: the 4 attention trials' and the gate trial's
    "up": {"up": 5, "down": 7},
    "o": {"o": 4, "mlp_norm": 4, "gate": 5, "up": 5, "down": 7},  # the MLP's norm: the 4 attention trials'
    **{kind: {kind: 1, "attention": 3, "o": 4, "mlp_norm": 4, "gate": 5, "up": 5, "down": 7}
       for kind in ("q", "k", "v")},
}


def test_a_step_recomputes_only_what_the_last_pick_changed_and_the_memo_stays_bounded(grouping):
    """Reuse across steps: after each pick, a step runs exactly the stages whose levels it changed (the attention
    core only after q/k/v, the MLP's norm after q/k/v/o; the attention's norm never); the memo holds no more than
    each stage at the current levels and one step up of each projection it depends on."""
    from wina.targets import block_params

    model = _model("llama")
    replay, gated = _layer0_replay(model)
    computed: dict[str, int] = {}

    def counting(kind):
        return lambda module, args: computed.update({kind: computed.get(kind, 0) + args[0].shape[0] // 2})

    for kind, module in gated.items():
        module.register_forward_pre_hook(counting(kind))
    replay.layer.post_attention_layernorm.register_forward_pre_hook(counting("mlp_norm"))
    replay.layer.input_layernorm.register_forward_pre_hook(counting("attention_norm"))
    replay.layer.self_attn.register_forward_pre_hook(lambda module, args, kwargs: computed.update(
        attention=computed.get("attention", 0) + kwargs["hidden_states"].shape[0] // 2), with_kwargs=True)
    steps, sizes = [], []

    def errors_of(trials):
        computed.clear()
        errors = replay.errors(trials)
        steps.append((trials, dict(computed)))
        sizes.append(len(replay.memo.outputs))
        return errors

    curve = allocate.greedy_curve(errors_of, block_params(model), step=0.1, max_sparsity=0.8)
    picks = [max(new, key=lambda k: new[k] - old[k]) for (_, old), (_, new) in zip(curve, curve[1:])]
    checked = 0
    for pick, (trials, ran) in zip(picks, steps[2:]):  # steps[1] is the first step, after no pick
        if len(trials) == 7:
            assert ran == RECOMPUTED_AFTER[pick], pick
            checked += 1
    assert checked > 10 and set(picks) == set(RECOMPUTED_AFTER)
    assert max(sizes) <= sum(len(deps) + 1 for deps in allocate.DEPENDS.values())


class _Interrupted(Exception):
    pass


def test_an_interrupted_search_resumes_at_the_first_missing_layer(tmp_path, monkeypatch):
    from experiments.harness.schema import TinyModelSchema
    from experiments.harness.tiny_model import tiny_llama

    model, _ = tiny_llama(TinyModelSchema(num_hidden_layers=3))
    tokens = torch.randint(0, 256, (2, 32))
    config = build_config("teal", dict(mask="topk", **SEARCH))
    sparsify_(copy.deepcopy(model), config, tokens, cache_dir=tmp_path / "whole")
    (whole,) = (tmp_path / "whole" / "calibration").glob("*.pt")

    search, searched = allocate.greedy_curve, []

    def interrupted_at_layer_2(*args, **kwargs):
        if len(searched) == 2:
            raise _Interrupted
        searched.append(search(*args, **kwargs))
        return searched[-1]

    with monkeypatch.context() as m:
        m.setattr(allocate, "greedy_curve", interrupted_at_layer_2)
        with pytest.raises(_Interrupted):
            sparsify_(copy.deepcopy(model), config, tokens, cache_dir=tmp_path / "resumed")
    (file,) = (tmp_path / "resumed" / "calibration").glob("*.pt")
    assert file.name == whole.name
    saved = torch.load(file, weights_only=True)
    assert "curves" not in saved and len(saved["curves.partial"]) == 2

    replayed = []
    replay = allocate.LayerReplay
    monkeypatch.setattr(allocate, "LayerReplay", lambda layer, *a: (replayed.append(layer), replay(layer, *a))[1])
    sparsify_(copy.deepcopy(model), config, tokens, cache_dir=tmp_path / "resumed")
    assert len(replayed) == 1  # the last layer only
    saved = torch.load(file, weights_only=True)
    assert "curves.partial" not in saved
    assert saved["curves"] == torch.load(whole, weights_only=True)["curves"]


def test_greedy_refuses_a_method_that_gates_only_the_activation(tiny):
    with pytest.raises(SparsityError, match="gates the MLP activation only"):
        sparsify_(copy.deepcopy(tiny.model), build_config("cats", dict(SEARCH, sparsity=0.3)),
                  torch.randint(0, 256, (2, 32)))


def test_a_curve_made_up_to_the_target_and_extended_is_the_curve_made_at_once(tmp_path, monkeypatch):
    """The search stops at the job's target; a sparser job extends each layer's curve from its last point (one
    replay per layer, none for a target already reached), and the result equals the curve made to the higher
    target at once; picks are read off it as before."""
    model, tokens = _model("llama"), torch.randint(0, 97, (4, 32))
    config = lambda s: build_config("teal", dict(mask="topk", **{**SEARCH, "greedy_max": 0.9, "sparsity": s}))
    curves = lambda d: torch.load(next((tmp_path / d / "calibration").glob("*.pt")), weights_only=True)["curves"]
    at_once = sparsify_(copy.deepcopy(model), config(0.8), tokens, cache_dir=tmp_path / "once")
    low = sparsify_(copy.deepcopy(model), config(0.3), tokens, cache_dir=tmp_path / "grown")
    short = curves("grown")
    assert all(0.3 <= c[-1][0] < 0.4 for c in short)  # stopped at the target
    replayed, first_trials = [], []
    replay = allocate.LayerReplay

    def recorded(*args):
        replayed.append(args[0])
        r = replay(*args)
        errors = r.errors
        r.errors = lambda trials: (first_trials.append([dict(t) for t in trials]) if len(first_trials) < len(replayed)
                                   else None,
                                   errors(trials))[1]
        return r

    monkeypatch.setattr(allocate, "LayerReplay", recorded)
    high = sparsify_(copy.deepcopy(model), config(0.8), tokens, cache_dir=tmp_path / "grown")
    assert curves("grown") == curves("once") and len(replayed) == 2
    assert first_trials == [[c[-1][1]] for c in short]  # each layer's search went on from where it had stopped
    assert all(c[:len(s)] == s for c, s in zip(curves("once"), short))
    assert high.levels == at_once.levels and low.levels != high.levels
    replayed.clear()
    sparsify_(copy.deepcopy(model), config(0.6), tokens, cache_dir=tmp_path / "grown")
    assert replayed == []  # reached already: read off the cached curves
