"""Every option of every config group composes, and what it names can be instantiated."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from experiments.cli import group_choices
from experiments.pipeline import check_config

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = group_choices(CONF)
EXTRA = {("model", "hf"): ["model.id=some-org/some-model"]}


def _compose(overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=False)


def test_groups_exist():
    assert {"model", "method", "tasks", "data"} <= set(GROUPS)
    assert {"smollm2-135m", "qwen2.5-0.5b", "gemma3-270m", "tiny-random", "hf", "llama-3-8b"} <= set(GROUPS["model"])
    assert {"paper8", "gsm8k", "mmlu", "quick"} <= set(GROUPS["tasks"])


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_option_composes_and_validates(group, option):
    cfg = _compose([f"{group}={option}", *EXTRA.get((group, option), [])])
    check_config(cfg)  # sparsity, data source, task names, limits
    assert cfg.model.name and cfg.method.name


@pytest.mark.parametrize("option", GROUPS["model"])
def test_model_configs_describe_a_loadable_source(option):
    from experiments.assets import FileAsset

    cfg = _compose([f"model={option}", *EXTRA.get(("model", option), [])]).model
    assert cfg.source in ("gguf", "hub", "tiny")
    if cfg.source == "gguf":
        asset = FileAsset.from_config(cfg.gguf)
        assert len(asset.sha256) == 64 and asset.parts and all("==" in p.wheel for p in asset.parts)
    if cfg.source == "hub":
        assert "/" in cfg.id


def test_tiny_random_instantiates(tiny):
    assert type(tiny.model).__name__ == "LlamaForCausalLM"
    assert tiny.model.config.num_hidden_layers == 2
