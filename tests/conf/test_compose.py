import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from conftest import CONF, compose_train
from medprune.runs.config import validate_config

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

    from medprune.runs.config import register_configs, validate_prune_config

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
    assert resolved["logger"]["wandb"]["name"] == f"prune_{pruning}_{suffix}_seed42"


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
        (["pruning=global", "sparsity=1.5"], r"sparsity=\)=1.5: expected a number in \[0, 1\)"),
        (["pruning=layerwise", "sparsity=-0.1"], r"=-0.1: expected a number in \[0, 1\)"),
        (["pruning=global", "pruning.scope=channel"], r"pruning.scope='channel': expected one of"),
        (
            ["pruning=global", "pruning.begin=0.5", "pruning.end=0.5"],
            r"pruning.end=0.5: the schedule",
        ),
        (["pruning=global", "pruning.frequency=0"], r"pruning.frequency=0"),
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


def compose_with_hydra(overrides):
    from hydra import compose, initialize_config_dir

    from medprune.runs.config import register_configs

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose("train", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize("task", ["nuclei", "cardiac"])
def test_the_sweep_preset_is_the_papers_grid_for_either_task(task):
    cfg = compose_with_hydra(["+sweep=sparsity_grid", f"task={task}"])
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"  # no -m needed
    assert cfg.task_name == task
    assert dict(cfg.hydra.sweeper.params) == {
        "pruning": "none,global,layerwise",
        "sparsity": "0.5,0.75,0.875,0.9375,0.96875",
        "seed": "0,1,2",
    }
    # every multirun uses the grid sweeper: dense jobs train once per seed
    assert cfg.hydra.sweeper._target_.endswith("GridSweeper")
    assert cfg.hydra.sweeper.dense == {"override": "pruning=none", "ignores": ["sparsity"]}


def test_wandb_run_is_named_and_tagged_by_task_scope_sparsity_and_seed(tmp_path):
    cfg = compose_train(["pruning=layerwise", "sparsity=0.875", "seed=2"], tmp_path)
    wandb = OmegaConf.to_container(cfg.logger.wandb, resolve=True)
    assert wandb["name"] == "nuclei_layerwise_0.875_seed2"
    assert wandb["tags"] == ["nuclei", "layerwise", "sparsity=0.875", "seed=2"]
    assert wandb["group"] == "nuclei"  # a single run; a multirun's jobs share <task>-<folder>
    dense = OmegaConf.to_container(compose_train(["seed=0"], tmp_path).logger.wandb, resolve=True)
    assert dense["tags"] == ["nuclei", "none", "sparsity=0.0", "seed=0"]


@pytest.mark.parametrize(
    ("overrides", "nodes", "tasks", "gpus"),
    [
        (["trainer=ddp"], 1, 2, 0),  # 2 CPU ranks
        (
            ["trainer=ddp", "trainer.accelerator=gpu", "trainer.devices=4", "+trainer.num_nodes=2"],
            2,
            4,
            4,
        ),
    ],
)
def test_slurm_launcher_asks_for_what_the_trainer_uses(overrides, nodes, tasks, gpus):
    from hydra.utils import get_class

    cfg = compose_with_hydra(["hydra/launcher=slurm", "hydra.launcher.partition=gpu", *overrides])
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    for key in ("nodes", "tasks_per_node", "gpus_per_node"):  # interpolations into the job config
        launcher[key] = OmegaConf.select(cfg, f"hydra.launcher.{key}")
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (
        nodes,
        tasks,
        gpus,
    )
    assert launcher["partition"] == "gpu" and launcher["timeout_min"] == 240
    cls = get_class(launcher.pop("_target_"))
    assert cls.__name__ == "SlurmLauncher"
    cls(**{k: v for k, v in launcher.items() if k != "submitit_folder"}, submitit_folder="x")


def test_threads_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="threads=0: expected an integer >= 1"):
        validate_config(compose_train(["threads=0"]))
