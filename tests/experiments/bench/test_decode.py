"""The decode benchmark runs the harness's path: a transformers Llama gated by ``sparsify_`` with a method YAML's
configuration (here tiny, on CPU, eager; on a GPU the same code is timed in CUDA graphs)."""

import torch

from experiments.bench.decode import build_model, measured_sparsity, time_decode
from experiments.harness.sparsity import compose_method
from wina import sparsify_
from wina.gated import GatedLinear

TINY = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2, vocab_size=300)


def test_decode_bench_times_a_harness_configuration():
    cfg, calibration, label = compose_method("teal", 0.5, ["method.allocation=uniform", "calibration.n_samples=4",
                                                          "calibration.seq_len=32"])
    assert label == "teal" and cfg.allocation == "uniform" and cfg.sparsity == 0.5
    model = build_model(2, "cpu", torch.float32, shape=TINY)
    prompt = torch.randint(0, 300, (1, 16))
    sp = sparsify_(model, cfg, torch.randint(0, 300, (4, 32)), calibration=calibration)
    assert sum(isinstance(m, GatedLinear) for m in model.modules()) == 2 * 7
    measured = measured_sparsity(model, sp, prompt, 8)
    assert 0.3 < measured < 0.7  # decode tokens are gated (no dense prefix at one position)
    assert time_decode(model, prompt, steps=2, graphs=False, warmup=1) > 0
