"""Load each registry model and check it: perplexity on plain prose, WINA's transform is function-preserving,
and WINA at 50% measures 50%.   python -m experiments.analysis.check_models [--models smollm2-135m qwen2.5-0.5b gemma3-270m]"""

from __future__ import annotations

import argparse
import copy
import math

import torch
from experiments.harness.models import load_model
from experiments.harness.schema import load_option
from experiments.harness.tables import markdown_table
from wina import build_config, sparsify_

PROSE = (
    "The old lighthouse stood at the edge of the cliff for more than a hundred years. Every evening the keeper "
    "climbed the narrow stairs, cleaned the glass and lit the lamp, so that the fishing boats could find their way "
    "home through the fog. When the town grew and the harbour was moved further south, the light was no longer "
    "needed, but the people kept it burning because it reminded them of the families who had lived there."
)


@torch.no_grad()
def check(name: str) -> dict:
    lm = load_model(load_option("model", name), "cpu", "float32")
    ids = lm.tokenizer(PROSE, return_tensors="pt").input_ids
    ref = lm.model(ids, labels=ids)
    rotated = copy.deepcopy(lm.model)
    sparsify_(rotated, build_config("wina", dict(sparsity=0.0, allocation="uniform")))
    diff = (rotated(ids).logits - ref.logits).norm() / ref.logits.norm()
    gated = copy.deepcopy(lm.model)
    sp = sparsify_(gated, build_config("wina", dict(sparsity=0.5, allocation="uniform")))
    sp.reset_counts()
    gated(ids)
    return {"model": name, "class": type(lm.model).__name__, "perplexity": math.exp(ref.loss.item()),
            "transform_rel_logit_diff": diff.item(), "wina50_measured": sp.measured(gated).overall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "qwen2.5-0.5b", "gemma3-270m"])
    args = ap.parse_args()
    rows = []
    for name in args.models:
        r = check(name)
        print(f"{name}: {r}", flush=True)
        rows.append([r["model"], r["class"], f"{r['perplexity']:.2f}", f"{r['transform_rel_logit_diff']:.1e}",
                     f"{r['wina50_measured']:.4f}"])
    print(markdown_table(["model", "class", "perplexity (prose)", "transform: relative logit change",
                          "WINA 50%: measured"], rows))


if __name__ == "__main__":
    main()
