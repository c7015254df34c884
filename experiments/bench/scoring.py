"""The log-likelihood loop: HFLM's ``_loglikelihood_tokens`` against the harness's batched scorers
(``scoring=hflm``: ``experiments.harness.scoring``; ``scoring=shared``: ``experiments.harness.shared_scoring``) on
the same tokenized requests, side by side in one process, at several batch sizes, on the dense model and
(``--method``) on a sparsified one; whether their answers agree; and (``--profile``) where the first scorer's time
goes.

    python -m experiments.bench.scoring [--scorers hflm,shared] [--batch-sizes 256,1024] [--hflm 64]
        [--method wina --sparsity 0.65] [--profile 20] [run.py overrides ...]

Requests: lm-eval's own for the configured tasks and limit (``tasks=paper8 limit=200`` by default here), tokenized
once. Prints seconds per loop (after one warm-up batch), requests per second, the ratio to HFLM at the same batch
size, and the largest log-likelihood difference and greedy-flag disagreements against the first run on the same
model (a sparsified model's top-k near-ties may go either way between two batchings).
"""

from __future__ import annotations

import argparse
import time

import torch

from experiments.harness.tables import markdown_table


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(fn):
    _sync()
    t0 = time.perf_counter()
    out = fn()
    _sync()
    return out, time.perf_counter() - t0


def requests_of(tasks, limit) -> list[tuple[str, str]]:
    pairs = []
    for task in tasks.loaded["tasks"].values():
        task.build_all_requests(limit=limit, rank=0, world_size=1)
        pairs += [tuple(inst.args) for inst in task.instances if inst.request_type == "loglikelihood"]
    return pairs


def main(argv: list[str] | None = None) -> None:
    from experiments.harness.lm import SCORERS, SessionLM
    from experiments.harness.pipeline import cache_dir_of
    from experiments.harness.schema import compose_config
    from experiments.harness.session import SESSION
    from experiments.harness.tasks import check_task_names

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", default="256,1024")
    ap.add_argument("--hflm", type=int, default=0, metavar="BATCH",
                    help="also time HFLM's own loop, at this batch size (its full-vocabulary float32 log-softmax at "
                         "every position needs ~37 GiB at 256 on paper8's longest requests)")
    ap.add_argument("--profile", type=int, default=0, help="profile the scorer on this many batches")
    ap.add_argument("--scorers", default="hflm,shared", help="scoring options to time (experiments.harness.lm)")
    ap.add_argument("--method", help="also time them on the model sparsified by this method (a conf/method option)")
    ap.add_argument("--sparsity", type=float, default=0.65)
    args, overrides = ap.parse_known_args(argv)

    cfg = compose_config(["tasks=paper8", "limit=200", *overrides])
    cache_dir = cache_dir_of(cfg)
    data_dir, _ = SESSION.data(cfg.data, cache_dir, cfg.find_links)
    loaded = SESSION.model(cfg, cache_dir)
    specs = check_task_names(list(cfg.tasks.names))
    tasks = SESSION.tasks(specs, cfg, data_dir)
    pairs = requests_of(tasks, cfg.limit)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    if args.hflm and args.hflm not in sizes:
        sizes.insert(0, args.hflm)
    lm = SessionLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=sizes[0], max_length=cfg.max_length)
    requests, tokenize_s = _timed(lambda: [(p, *lm._encode_pair(*p)) for p in pairs])

    scorers = args.scorers.split(",")
    unknown = [s for s in scorers if s not in SCORERS]
    if unknown:
        raise SystemExit(f"--scorers: {', '.join(unknown)} not known; accepted: {', '.join(SCORERS)}")
    rows = _time_scorers("dense", loaded.model, lm, requests, scorers, sizes, args.hflm)
    if args.method:
        from experiments.harness.sparsity import apply_method, method_config

        mcfg = compose_config(["tasks=paper8", "limit=200", *overrides, f"method={args.method}",
                               f"sparsity={args.sparsity}"])
        applied = apply_method(loaded, method_config(mcfg), mcfg, data_dir, cache_dir)
        try:
            rows += _time_scorers(f"{args.method} {args.sparsity:g}", loaded.model, lm, requests, scorers, sizes,
                                  args.hflm)
        finally:
            applied.restore()
    print(f"scoring: {loaded.name} on {next(loaded.model.parameters()).device}, {len(requests)} requests "
          f"({', '.join(s.name for s in specs)}, limit {cfg.limit}); tokenized in {tokenize_s:.1f} s\n")
    print(markdown_table(("model", "scoring", "batch", "scorer s", "requests/s", "HFLM s", "HFLM / scorer",
                          "max ll diff (vs HFLM, or the first run)", "greedy flags differing"), rows))
    if args.profile:
        _profile(SCORERS[scorers[0]](loaded.model, lm.max_length, sizes[0]), requests[:sizes[0] * args.profile])


def _time_scorers(model_name: str, model, lm, requests, scorers, sizes, hflm_batch) -> list[tuple]:
    """One row per scorer and batch size on ``model``'s current state; HFLM's own loop once, at ``hflm_batch``."""
    from lm_eval.models.huggingface import HFLM

    from experiments.harness.lm import SCORERS

    rows, first, reference, hflm_s = [], None, None, None
    for name in scorers:
        for bs in sizes:
            scorer = SCORERS[name](model, lm.max_length, bs)
            scorer.score(requests[:bs], disable_tqdm=True)  # warm-up (and the checks)
            answers, seconds = _timed(lambda: scorer.score(requests, disable_tqdm=True))
            first = first or answers
            if bs == hflm_batch and reference is None:
                lm.batch_size_per_gpu = bs
                reference, hflm_s = _timed(lambda: HFLM._loglikelihood_tokens(lm, requests, disable_tqdm=True))
            versus = reference if bs == hflm_batch else first
            diff = max(abs(a[0] - b[0]) for a, b in zip(answers, versus))
            flips = sum(a[1] != b[1] for a, b in zip(answers, versus))
            print(f"{model_name} scoring={name} batch {bs}: {seconds:.2f} s", flush=True)
            rows.append((model_name, name, bs, f"{seconds:.2f}", f"{len(requests) / seconds:.0f}",
                         f"{hflm_s:.2f}" if bs == hflm_batch else "",
                         f"{hflm_s / seconds:.2f}" if bs == hflm_batch else "", f"{diff:.2e}", flips))
    return rows


def _profile(scorer, requests) -> None:
    from torch.profiler import ProfilerActivity, profile

    scorer.checked = True
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        scorer.score(requests, disable_tqdm=True)
        _sync()
    key = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    print(f"\nprofile of {len(requests)} requests\n")
    print(prof.key_averages().table(sort_by=key, row_limit=18))


if __name__ == "__main__":
    main()
