import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from conftest import CONF, compose_train
from medprune.config import validate_config

GROUPS = [
    "task",
    "data",
    "model",
    "pruning",
    "trainer",
    "logger",
    "callbacks",
    "paths",
    "hydra",
    "experiment",
]


def options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "override",
    [
        f"{g}={o}"
        for g in GROUPS
        if g not in ("hydra",)
        for o in options(g)
        if f"{g}={o}" != "pruning=structured"  # prune.py only: see test_prune_composes
    ],
)
def test_every_group_option_composes_and_resolves(override, tmp_path):
    cfg = compose_train([override], tmp_path)
    validate_config(cfg)
    # everything but Hydra's own runtime values resolves
    OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize("pruning", ["structured", "global", "layerwise"])
def test_prune_composes_with_each_pruning_option(pruning, tmp_path):
    from hydra import compose, initialize_config_dir

    from medprune.config import register_configs, validate_prune_config

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose(
            "prune",
            overrides=[
                "ckpt=x.ckpt",
                f"pruning={pruning}",
                "target.compression=10",
                f"paths.output_dir={tmp_path}",
            ],
        )
    validate_prune_config(cfg)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["pruning"]["scope"] == pruning and resolved["finetune"]["epochs"] == 2
    # the W&B run name resolves without a target_sparsity for channel pruning
    suffix = "channels" if pruning == "structured" else "0.9375"
    assert resolved["logger"]["wandb"]["name"] == f"prune_{pruning}_{suffix}"


def test_every_group_is_in_the_defaults():
    cfg = compose_train([])
    for key in ("task", "data", "model", "pruning", "trainer", "callbacks", "paths"):
        assert key in cfg
    assert cfg.task_name == "nuclei" and cfg.pruning.scope == "none"


def test_acdc_cpu_recipe_composes_the_cardiac_task_on_acdc():
    cfg = compose_train(["experiment=acdc_cpu", "data.root=/acdc", "pruning=global"])
    assert cfg.task_name == "cardiac" and cfg.data._target_.endswith("AcdcDataModule")
    assert cfg.data.root == "/acdc" and cfg.model.base_channels == 16
    assert cfg.trainer.max_epochs == 50 and cfg.pruning.scope == "global"
    assert cfg.task.largest_component is True


def test_main_command_overrides_need_no_plus():
    cfg = compose_train(["pruning=global", "sparsity=0.9375"])
    assert cfg.pruning.scope == "global" and cfg.pruning.target_sparsity == 0.9375
    cfg = compose_train(["pruning=layerwise", "sparsity=0.8", "seed=3", "ckpt_path=null"])
    assert cfg.pruning.scope == "layerwise" and cfg.pruning.target_sparsity == 0.8
    assert cfg.seed == 3


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["pruning=global", "sparsity=1.0"], r"pruning.target_sparsity \(set by sparsity=\)=1.0"),
        (["pruning=global", "sparsity=1.5"], r"sparsity=\)=1.5: expected a value in \[0, 1\)"),
        (["pruning=layerwise", "sparsity=-0.1"], r"=-0.1: expected a value in \[0, 1\)"),
        (["pruning=global", "pruning.scope=channel"], r"pruning.scope='channel': expected one of"),
        (
            ["pruning=global", "pruning.begin=0.5", "pruning.end=0.5"],
            r"pruning.end=0.5: the schedule",
        ),
        (["pruning=global", "pruning.frequency=0"], r"pruning.frequency=0"),
        (["ckpt_path=/no/such.ckpt"], r"ckpt_path=/no/such.ckpt: no such checkpoint"),
    ],
)
def test_bad_values_fail_naming_the_key(overrides, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        validate_config(compose_train(overrides))


def test_schema_rejects_unknown_keys_and_wrong_types():
    with pytest.raises(ConfigCompositionException) as err:
        compose_train(["pruning=global", "pruning.sparsityy=0.5"])
    assert "sparsityy" in str(err.value.__cause__ or err.value)
    with pytest.raises((ConfigCompositionException, ValidationError)) as err:
        compose_train(["pruning=global", "pruning.frequency=often"])
    assert "frequency" in str(err.value.__cause__ or err.value)
