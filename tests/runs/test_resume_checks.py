"""ckpt_path= must fit the run: a readable Lightning training checkpoint, the same task and
network, and pruning state that is neither dropped nor contradicted. All refused before any
data is made or any folder written."""

from __future__ import annotations

import io

import pytest
import torch

from acdc_fixtures import write_patient
from conftest import CARDIAC_TINY, TINY, compose_train
from medprune.runs import job
from medprune.runs.training import train

PRUNED = ["pruning=global", "sparsity=0.5"]


@pytest.fixture(scope="module")
def pruned_ckpt(tmp_path_factory):
    """A nuclei run pruned to 0.5 (global): its last checkpoint."""
    out = tmp_path_factory.mktemp("pruned") / "run"
    train(compose_train([*TINY, *PRUNED], out))
    return out / "checkpoints" / "last.ckpt"


@pytest.fixture
def no_data(monkeypatch):
    """Fails the test if a run gets as far as building its data."""

    def refuse(data):
        raise AssertionError("data was built before the checkpoint was checked")

    monkeypatch.setattr("medprune.runs.training.build_data", refuse)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ([], r"holds global pruning state at sparsity \{'all': 0.5\}.*this run has pruning=none"
             r".*resume with pruning=global sparsity=0.5"),
        (["pruning=layerwise", "sparsity=0.5"], r"this run has pruning.scope=layerwise: resume "
                                                r"with pruning=global"),
        (["pruning=global", "sparsity=0.3"], r"target for 'all' is 0.3, below what is pruned "
                                             r"already .*target >= 0.5"),
        (["pruning=global", "pruning.targets.seg=0.5"], r"this run prunes groups \['seg'\]"),
        (["model.base_channels=8", *PRUNED], r"another network \(model.base_channels: 4 there, "
                                             r"8 here\)"),
    ],
)  # fmt: skip
def test_a_checkpoint_that_does_not_fit_the_run_is_refused(
    pruned_ckpt, tmp_path, no_data, overrides, match
):
    out = tmp_path / "resumed"
    cfg = compose_train([*TINY, *overrides, f"ckpt_path={pruned_ckpt}"], out)
    with pytest.raises(ValueError, match=match):
        train(cfg)
    assert not out.exists()  # nothing written for a refused run


def test_another_task_is_refused(pruned_ckpt, tmp_path, no_data):
    cfg = compose_train([*CARDIAC_TINY, f"ckpt_path={pruned_ckpt}"], tmp_path / "resumed")
    with pytest.raises(ValueError, match="trained for task=nuclei, this run is task=cardiac"):
        train(cfg)


def test_resuming_with_a_higher_target_continues_without_regrowth(pruned_ckpt, tmp_path):
    cfg = compose_train([*TINY, "pruning=global", "sparsity=0.75", f"ckpt_path={pruned_ckpt}",
                         "trainer.max_epochs=4"], tmp_path / "resumed")  # fmt: skip
    summary = train(cfg)
    assert summary["pruning"]["achieved_sparsity"] == pytest.approx(0.75, abs=1e-3)
    before = torch.load(pruned_ckpt, weights_only=True)["state_dict"]
    after = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    regrown = sum(
        int(((w == 0) & (after["state_dict"][k] != 0)).sum())
        for k, w in before.items()
        if k.endswith("weight") and w.ndim == 4
    )
    assert regrown == 0


def not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.ckpt"
    path.write_text("hello\n")
    return path, "not a readable PyTorch checkpoint"


def weights_only_dict(tmp_path):
    path = tmp_path / "weights.ckpt"
    torch.save({"net": torch.zeros(2)}, path)
    return path, "not a Lightning training checkpoint \\(no state_dict, optimizer_states"


def truncated(tmp_path, source):
    path = tmp_path / "truncated.ckpt"
    path.write_bytes(source.read_bytes()[:3000])
    return path, "not a readable PyTorch checkpoint"


def with_omegaconf(tmp_path):
    from omegaconf import OmegaConf

    path = tmp_path / "omegaconf.ckpt"
    torch.save({"state_dict": {}, "x": OmegaConf.create([1.5, 1.5])}, path)
    return path, "Lightning's checkpoint loader \\(weights_only\\) refuses it.*ListConfig"


@pytest.mark.parametrize("make", ["missing", "text", "dict", "truncated", "omegaconf"])
def test_an_unreadable_checkpoint_is_named_before_any_data(pruned_ckpt, tmp_path, no_data, make):
    path, match = {
        "missing": lambda: (tmp_path / "none.ckpt", "no such checkpoint file"),
        "text": lambda: not_a_checkpoint(tmp_path),
        "dict": lambda: weights_only_dict(tmp_path),
        "truncated": lambda: truncated(tmp_path, pruned_ckpt),
        "omegaconf": lambda: with_omegaconf(tmp_path),
    }[make]()
    cfg = compose_train([*TINY, f"ckpt_path={path}"], tmp_path / "resumed")
    with pytest.raises((ValueError, FileNotFoundError), match=f"ckpt_path={path}: {match}"):
        train(cfg)
    assert not (tmp_path / "resumed").exists()


DATA_CONFIGS = {  # {root}: an empty folder (the constructors only check that it exists)
    "nuclei_synthetic": TINY,
    "nuclei_folder": ["data=nuclei_folder", "data.root={root}", "model.depth=3"],
    "monuseg": ["data=monuseg", "data.root={root}", "data.test_root={root}", "model.depth=3"],
    "cardiac_synthetic": CARDIAC_TINY,
    "acdc": ["task=cardiac", "data=acdc", "data.root={root}", "data.test_root={root}"],
}


@pytest.mark.parametrize("name", sorted(DATA_CONFIGS))
def test_every_task_and_data_config_gives_plain_hyperparameters(name, tmp_path):
    # what a checkpoint stores of the modules must pass Lightning's weights_only resume loader
    cfg = compose_train([o.format(root=tmp_path) for o in DATA_CONFIGS[name]])
    _, module = job.build_task(cfg)
    datamodule = job.build_data(cfg.data)  # constructors only: no file is read here
    buffer = io.BytesIO()
    # as Lightning's checkpoint holds them: "hyper_parameters", "datamodule_hyper_parameters"
    torch.save({"module": dict(module.hparams), "data": dict(datamodule.hparams)}, buffer)
    buffer.seek(0)
    torch.load(buffer, weights_only=True)


def test_an_acdc_run_resumes_and_evaluates_volumes_of_any_size(tmp_path):
    root = tmp_path / "acdc"
    for number, group in enumerate(["NOR", "NOR", "DCM", "DCM", "HCM"], start=1):
        write_patient(root, number, group)
    # target_spacing (a list in the config) reaches the checkpoint; resampled to it the 20x24
    # px slices are 16x23 px, and with no padding (pad_multiple=1) a depth-4 U-Net, which
    # needs multiples of 8, gets them padded and cropped back by the evaluation itself
    acdc = ["task=cardiac", "data=acdc", f"data.root={root}",
            "data.pad_multiple=1", "data.crop_size=16", "data.batch_size=4", "data.augment=false",
            "model.base_channels=4", "model.depth=4", "trainer.enable_progress_bar=false",
            "logger=none", "pruning=global", "sparsity=0.5", "pruning.frequency=1"]  # fmt: skip
    first = train(compose_train([*acdc, "trainer.max_epochs=1"], tmp_path / "first"))
    assert 0.0 <= first["metrics"]["test/dice_mean"] <= 1.0
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    torch.load(last, weights_only=True)  # what Lightning's resume does
    resumed = compose_train([*acdc, "trainer.max_epochs=2", f"ckpt_path={last}"], tmp_path / "b")
    summary = train(resumed)
    assert summary["steps"] == 2 * first["steps"]
    assert summary["pruning"]["achieved_sparsity"] == pytest.approx(0.5, abs=1e-3)
