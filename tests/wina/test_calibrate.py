"""Sequential threshold calibration replays each layer only up to the last target of the site it samples; the
samples, and so the thresholds, are those of full replays."""
import copy

import pytest
import torch

from wina import build_config, calibrate, sparsify_


def _thresholds(model, method, tokens):
    m = copy.deepcopy(model)
    name, options = method
    sparsify_(m, build_config(name, dict(sparsity=0.3, allocation="uniform", **options)), tokens)
    return {name: mod.gate.threshold for name, mod in m.named_modules() if hasattr(mod, "gate")}


@pytest.mark.parametrize("method", [("teal", {}), ("cats", {}), ("wina", {"mask": "threshold"})], ids=str)
def test_replays_stopped_at_the_sites_last_target_draw_the_full_replays_samples(tiny, method, monkeypatch):
    tokens = torch.randint(0, 256, (3, 32), generator=torch.Generator().manual_seed(0))
    stopped = _thresholds(tiny.model, method, tokens)
    full_sampler = calibrate._Sampler
    monkeypatch.setattr(calibrate, "_Sampler",
                        lambda targets, quota, seed, stop=False: full_sampler(targets, quota, seed))
    full = _thresholds(tiny.model, method, tokens)
    assert stopped.keys() == full.keys() and len(full) > 0
    assert stopped == full


def test_a_sampled_value_is_the_activation_at_its_channel(tiny):
    from wina.targets import linear_targets

    targets = linear_targets(tiny.model)[:2]
    seen = {}
    hooks = [t.module.register_forward_pre_hook(lambda m, a, key=t.key: seen.setdefault(key, a[0].detach().clone()))
             for t in targets]
    with calibrate._Sampler(targets, quota=50, seed=0) as sampler:
        tiny.model(torch.randint(0, 256, (1, 16)), use_cache=False)
    for h in hooks:
        h.remove()
    for key, sample in sampler.samples().items():
        x = seen[key].reshape(-1, seen[key].shape[-1])
        values, channels = sample[0], sample[1].long()
        assert sample.shape[1] == 50
        assert all(bool((x[:, c] == v).any()) for v, c in zip(values.tolist(), channels.tolist()))


def test_sequential_thresholds_replay_each_layer_with_its_own_kwargs(monkeypatch):
    """Gemma3's sliding and global layers get other masks and rotary embeddings: the sequential re-calibration
    replays each layer with what the model itself passes it."""
    from tests.wina.test_greedy_replay import _model
    from wina import api
    from wina.calibrate import capture_layer_io
    from wina.targets import decoder_layers

    model, tokens = _model("gemma3"), torch.randint(0, 97, (2, 32))
    _, own_kwargs = capture_layer_io(model, tokens)
    seen: dict[int, list] = {}
    sequential = calibrate.sequential_samples_

    def recorded(m, *args, **kwargs):
        hooks = [layer.register_forward_pre_hook(lambda mod, a, kw, i=i: seen.setdefault(i, []).append(
            kw["position_embeddings"]), with_kwargs=True)
            for i, layer in enumerate(decoder_layers(m))]
        try:
            return sequential(m, *args, **kwargs)
        finally:
            for h in hooks:
                h.remove()

    monkeypatch.setattr(api, "sequential_samples_", recorded)
    sparsify_(copy.deepcopy(model), build_config("teal", dict(sparsity=0.3, allocation="uniform")), tokens)
    assert sorted(seen) == [0, 1]
    for i, calls in seen.items():
        for rotary in calls:
            assert all(torch.equal(a, b) for a, b in zip(rotary, own_kwargs[i][0]["position_embeddings"])), i
    assert (own_kwargs[0][0]["position_embeddings"][0] != own_kwargs[1][0]["position_embeddings"][0]).any()


def test_capturing_the_first_layers_input_runs_no_layer_and_gets_every_layers_kwargs():
    """``hidden="first"`` passes each layer's input through (the capture costs the embeddings, not a forward): the
    same first-layer hidden states and per-layer kwargs as a full capture, no layer computed, the layers intact
    after."""
    from tests.wina.test_greedy_replay import _model
    from wina.calibrate import capture_layer_io
    from wina.targets import decoder_layers

    model, tokens = _model("gemma3"), torch.randint(0, 97, (2, 32))
    full_inputs, full_kwargs = capture_layer_io(model, tokens)
    calls = []
    hooks = [layer.mlp.register_forward_hook(lambda *a: calls.append(1)) for layer in decoder_layers(model)]
    inputs, kwargs = capture_layer_io(model, tokens, hidden="first")
    assert calls == []
    assert all(torch.equal(a, b) for a, b in zip(inputs[0], full_inputs[0])) and all(not x for x in inputs[1:])
    for mine, full in zip(kwargs, full_kwargs):
        for a, b in zip(mine, full):
            assert a.keys() == b.keys()
            assert all(torch.equal(x, y) for x, y in zip(a["position_embeddings"], b["position_embeddings"]))
    model(tokens[:1])  # the layers compute again
    for h in hooks:
        h.remove()
    assert len(calls) == len(decoder_layers(model))
