"""The typed schema: every option of every config group composes and validates; a method YAML and its library
dataclass never disagree silently; wrong types and unknown keys are caught."""

import dataclasses

import pytest
import yaml
from omegaconf import OmegaConf

from experiments.harness.cli import group_choices
from experiments.harness.pipeline import check_config
from experiments.harness.schema import (CONF_DIR, RUN_LEVEL, compose_config, load_option, method_schemas,
                                        unknown_keys)
from wina import registry

GROUPS = group_choices(CONF_DIR)
EXTRA = {("model", "hf"): ["model.id=some-org/some-model"]}
# What a method YAML may set beyond its name: the harness's deliberate departures from the library defaults.
DELIBERATE = {"rsparse": {"alpha"}, "teal-transform": {"label", "transform"}, "teal-topk": {"label", "mask"},
              "wina-notransform": {"label", "transform"}, "wina-threshold": {"label", "mask"}}


def _raw_chain(option):
    """The keys an option's YAML sets, its parents' (``defaults: [teal]``) included."""
    raw = yaml.safe_load((CONF_DIR / "method" / f"{option}.yaml").read_text()) or {}
    merged = {}
    for parent in raw.get("defaults", []):
        if isinstance(parent, str) and not parent.startswith("/") and parent != "_self_":
            merged.update(_raw_chain(parent))
    merged.update({k: v for k, v in raw.items() if k != "defaults"})
    return merged


def _compose(overrides, name="config"):
    return compose_config(overrides, name)


def test_groups_exist():
    assert {"model", "method", "tasks", "data"} <= set(GROUPS)
    assert {"smollm2-135m", "qwen2.5-0.5b", "gemma3-270m", "tiny-random", "hf", "llama-3-8b"} <= set(GROUPS["model"])
    assert {"paper8", "gsm8k", "mmlu", "quick"} <= set(GROUPS["tasks"])
    assert set(GROUPS["method"]) >= {"dense", *registry.names()}


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_option_composes_and_validates(group, option):
    cfg = _compose([f"{group}={option}", *EXTRA.get((group, option), [])])
    assert unknown_keys(cfg) == []
    check_config(cfg, probe_hub=False)
    assert cfg.model.name and cfg.method.name and cfg.method.label


def test_approx_error_config_composes():
    cfg = _compose(["methods=[wina,teal]"], name="approx_error")
    assert unknown_keys(cfg) == [] and cfg.sparsity == 0.5 and list(cfg.methods) == ["wina", "teal"]


@pytest.mark.parametrize("option", [o for o in GROUPS["method"] if o != "dense"])
def test_method_yaml_restates_no_library_default(option):
    """A method YAML holds its name and only deliberate changes: a key that repeats the dataclass default, or
    differs from it without being declared deliberate, fails here."""
    raw = yaml.safe_load((CONF_DIR / "method" / f"{option}.yaml").read_text()) or {}
    cfg = _compose([f"method={option}"])
    cls = registry.config_class(cfg.method.name)
    defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    for key, value in raw.items():
        if key == "defaults":
            continue
        assert key in DELIBERATE.get(option, set()), f"{option}.yaml sets {key}: not declared deliberate"
        if key in defaults:
            assert value != defaults[key], f"{option}.yaml restates the library default {key}={value!r}"
    # what the composed method node holds is the library default wherever the YAML says nothing
    chain = _raw_chain(option)
    for key, default in defaults.items():
        if key not in RUN_LEVEL and key not in chain:
            assert cfg.method[key] == default, (option, key)


def test_method_schemas_mirror_the_library_configs():
    for name, schema in method_schemas().items():
        fields = {f.name for f in dataclasses.fields(schema)}
        if name == "dense":
            assert fields == {"name", "label"}
            continue
        lib = {f.name for f in dataclasses.fields(registry.config_class(name))}
        assert fields == (lib - set(RUN_LEVEL)) | {"name", "label"}


@pytest.mark.parametrize("override,error", [
    ("limit=0.5", "ValidationError"), ("num_fewshot=abc", "ValidationError"), ("method=wina method.transform=maybe",
                                                                              "ValidationError"),
    ("method.nope=1", "ConfigCompositionException"),
])
def test_hydra_rejects_wrong_types_and_unknown_keys(override, error):
    with pytest.raises(Exception) as info:
        _compose(override.split())
    chain, e = [], info.value
    while e is not None:
        chain.append(type(e).__name__)
        e = e.__cause__
    assert error in chain


def test_added_keys_are_found():
    cfg = _compose(["+spars=0.5", "method=wina", "+method.typo=1"])
    assert unknown_keys(cfg) == ["method.typo", "spars"] or sorted(unknown_keys(cfg)) == ["method.typo", "spars"]


@pytest.mark.parametrize("option", GROUPS["model"])
def test_model_configs_describe_a_loadable_source(option):
    from experiments.harness.assets import FileAsset

    cfg = _compose([f"model={option}", *EXTRA.get(("model", option), [])]).model
    assert cfg.source in ("gguf", "hub", "tiny")
    if cfg.source == "gguf":
        asset = FileAsset.from_config(cfg.gguf)
        assert len(asset.sha256) == 64 and asset.parts and all("==" in p.wheel for p in asset.parts)
    if cfg.source == "hub":
        assert "/" in cfg.id
    if cfg.source == "tiny":
        assert OmegaConf.to_container(cfg.tiny)["hidden_size"] > 0


def test_load_option_gives_a_typed_group_config():
    tiny = load_option("model", "tiny-random")
    assert tiny.tiny.num_hidden_layers == 2 and tiny.id is None


def test_tiny_random_instantiates(tiny):
    assert type(tiny.model).__name__ == "LlamaForCausalLM"
    assert tiny.model.config.num_hidden_layers == 2
