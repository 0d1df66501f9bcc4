"""prune.py end to end on a tiny trained cardiac U-Net, and its early errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch

from acdc_fixtures import frame_data, write_nifti
from conftest import CARDIAC_TINY, ROOT, compose_predict, compose_prune, compose_train
from medprune.inference.checkpoint import CONFIG_KEY, load_trained
from medprune.inference.export import load_program
from medprune.inference.predict import predict
from medprune.models import UNet
from medprune.pruning.structured import count_parameters
from medprune.runs.config import validate_config
from medprune.runs.sculpting import sculpt
from medprune.runs.sculptor import Sculptor
from medprune.runs.training import train
from medprune.tasks import CardiacSegmentationTask

# Tiny prune runs: one fine-tuning epoch per step, three timed runs per latency.
FAST = ["finetune.epochs=1", "trainer.enable_progress_bar=false", "bench.warmup=1"]
FAST += ["bench.repeats=3", "logger=none"]
# ... and for the tests of the pruning loop, no ONNX export (the CLI test checks it)
NO_ONNX = [*FAST, "export.onnx=false"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint of the cardiac task (U-Net widths 4-8-16, 4 classes, 32 px slices)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    train(compose_train(CARDIAC_TINY, out))
    return out / "checkpoints" / "last.ckpt"


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def sculpted(trained, tmp_path_factory):
    """One `python prune.py` run (structured, one step of ratio 0.5) on ``trained``, shared by
    the CLI tests below: (output folder, the process, summary.json, the input's digest)."""
    before = digest(trained)
    out = tmp_path_factory.mktemp("sculpted") / "prune"
    args = [f"ckpt={trained}", "target.compression=3", "target.max_quality_drop=0.99"]
    args += ["pruning.step_ratio=0.5", "pruning.ranking=uniform", "pruning.max_steps=3", *FAST]
    args.append(f"hydra.run.dir={out}")
    proc = subprocess.run(
        [sys.executable, "prune.py", *args],
        cwd=ROOT,
        env={**os.environ, "WANDB_MODE": "disabled"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc, json.loads((out / "summary.json").read_text()), before


def test_cli_only_reads_the_input_checkpoint(trained, sculpted):
    assert digest(trained) == sculpted[3]


def test_cli_summary_meets_the_compression_target(sculpted):
    _, _, s, _ = sculpted
    base, pruned = s["baseline"], s["pruned"]
    for side in (base, pruned):
        assert {"metrics", "params", "latency_ms", "onnx_latency_ms"} <= set(side)
        assert "test/dice_mean" in side["metrics"]
    # step 1 halves every prunable layer: widths 4-8-16 -> 2-4-8, the U-Net of base width 2
    assert pruned["step"] == 1 and s["stopped"] == "criteria met"
    assert base["params"] == count_parameters(UNet(1, 4, 4, 3))
    assert pruned["params"] == count_parameters(UNet(1, 4, 2, 3))
    assert s["compression_ratio"] == pytest.approx(base["params"] / pruned["params"])
    assert s["criteria"]["compression"] == {
        "target": 3,
        "value": s["compression_ratio"],
        "met": True,
    }
    assert s["steps"][1]["widths"]["encoder.0.0"] == 2 and s["steps"][0]["widths"]["head"] == 4
    assert s["speedup"] == pytest.approx(base["latency_ms"] / pruned["latency_ms"])


def test_cli_exported_program_runs_alone_and_agrees_with_onnx(sculpted):
    import onnxruntime as ort

    out, _, s, _ = sculpted
    program = load_program(out / "model.pt2")
    assert sum(p.numel() for p in program.parameters()) == s["pruned"]["params"]
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        y = program(x)
    assert y.shape == (2, 4, 32, 32)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    (onnx_y,) = session.run(None, {"image": x.numpy()})
    np.testing.assert_allclose(onnx_y, y.numpy(), rtol=1e-3, atol=1e-4)


def test_cli_prints_the_report_and_logs_each_step(sculpted):
    out, proc, s, _ = sculpted
    report = (out / "report.md").read_text()
    assert "| compression | 3 |" in report and report in proc.stdout
    step1 = f"step 1: {s['pruned']['params']:,} params ({s['compression_ratio']:.1f}x)"
    assert step1 in (out / "prune.log").read_text()


def test_cli_output_is_a_deployment_folder_for_both_runtimes(sculpted, tmp_path):
    # the sculpted model predicts a NIfTI volume with onnxruntime (model.onnx) and with torch
    # (model.pt2) alike
    out = sculpted[0]
    write_nifti(tmp_path / "scan.nii.gz", frame_data(3)[0], np.int16)
    labels = {}
    for runtime in ("onnxruntime", "torch"):
        pred = tmp_path / runtime
        args = [f"model={out}", f"input={tmp_path / 'scan.nii.gz'}", f"output={pred}"]
        assert predict(compose_predict([*args, f"runtime={runtime}"])) == 0
        labels[runtime] = np.asarray(nib.load(pred / "scan_seg.nii.gz").dataobj)
    assert labels["torch"].shape == frame_data(3)[0].shape
    assert (labels["torch"] == labels["onnxruntime"]).mean() >= 0.99


def test_unstructured_path_prunes_weights_and_writes_the_sparse_file(trained, tmp_path):
    cfg = compose_prune(
        [f"ckpt={trained}", "pruning=global", "sparsity=0.75", "target.compression=2"]
        + ["target.max_quality_drop=0.99", *NO_ONNX, f"paths.output_dir={tmp_path / 'p'}"]
    )
    s = sculpt(cfg)
    assert s["pruned"]["step"] == 1 and s["criteria"]["compression"]["met"]
    assert (tmp_path / "p" / "model.sparse").is_file()
    assert s["export"]["sparse"]["sparse_bytes"] < s["export"]["sparse"]["dense_bytes"]
    # non-zero parameters: 75 % of the prunable conv weights are gone (the first conv and the
    # head are excluded by default); biases and BatchNorm stay
    net = UNet(1, 4, 4, 3)
    prunable = sum(
        p.numel()
        for name, p in net.named_parameters()
        if p.dim() == 4 and name not in ("encoder.0.0.weight", "head.weight")
    )
    total = count_parameters(net)
    assert s["baseline"]["params"] == total
    assert s["pruned"]["params"] == total - round(0.75 * prunable)


def test_loop_stops_at_a_quality_breach_and_hands_back_the_step_before(
    trained, tmp_path, monkeypatch
):
    """Val quality forced to 0.8 (dense), 0.79 (-1.25 %), 0.5 (-37.5 %): the loop stops at
    step 2 and the exported model is step 1's, with 4x fewer parameters, not 16x."""
    qualities = iter([0.8, 0.79, 0.5])
    real_score = Sculptor.score

    def score(self, step, params):
        result, val = real_score(self, step, params)
        return dataclasses.replace(result, quality=next(qualities)), val

    monkeypatch.setattr(Sculptor, "score", score)
    out = tmp_path / "p"
    cfg = compose_prune(
        [f"ckpt={trained}", "target.compression=10", "target.max_quality_drop=0.04"]
        + ["pruning.step_ratio=0.5", "pruning.ranking=uniform", "pruning.max_steps=5", *NO_ONNX]
        + [f"paths.output_dir={out}"]
    )
    s = sculpt(cfg)
    assert [row["step"] for row in s["steps"]] == [0, 1, 2]
    assert s["stopped"] == "quality drop beyond target.max_quality_drop"
    assert s["pruned"]["step"] == 1 and s["pruned"]["val_quality"] == 0.79
    assert s["pruned"]["params"] == count_parameters(UNet(1, 4, 2, 3)) == s["steps"][1]["params"]
    program = load_program(out / "model.pt2")
    assert sum(p.numel() for p in program.parameters()) == s["pruned"]["params"]
    assert s["criteria"]["compression"]["met"] is False and not s["all_criteria_met"]
    assert s["quality_drop"] == pytest.approx(0.0125)


def test_a_step_past_the_tolerance_gets_its_recovery_epochs_and_is_scored_again(
    trained, tmp_path, monkeypatch
):
    """Val quality forced to 0.8 (dense), 0.5 at step 1 (-37.5 %), 0.79 after recovery
    (-1.25 %), then 0.78 at step 2 (16x), within at once: one recovery run, of 3 epochs."""
    qualities = iter([0.8, 0.5, 0.79, 0.78])
    real_score, runs = Sculptor.score, []

    def score(self, step, params):
        result, val = real_score(self, step, params)
        return dataclasses.replace(result, quality=next(qualities)), val

    def fine_tune(self, callbacks=None, epochs=None):
        runs.append(epochs)

    monkeypatch.setattr(Sculptor, "score", score)
    monkeypatch.setattr(Sculptor, "fine_tune", fine_tune)
    cfg = compose_prune(
        [f"ckpt={trained}", "target.compression=10", "target.max_quality_drop=0.04"]
        + ["pruning.step_ratio=0.5", "pruning.ranking=uniform", "pruning.max_steps=2"]
        + ["finetune.recover_epochs=3", *NO_ONNX, f"paths.output_dir={tmp_path / 'p'}"]
    )
    s = sculpt(cfg)
    assert runs == [None, 3, None]  # step 1, its recovery, step 2
    assert [row["quality"] for row in s["steps"]] == [0.8, 0.79, 0.78]
    assert [row["epochs"] for row in s["steps"]] == [0, 4, 1]
    assert s["pruned"]["step"] == 2 and s["stopped"] == "criteria met"  # 16x >= 10x


def test_fine_tuning_distils_from_the_frozen_dense_model(trained, tmp_path, monkeypatch):
    """finetune.distill: each pruned step trains against the dense network (all its
    parameters, unchanged), and the teacher is dropped before the model is handed back."""
    seen = []
    real_loss = CardiacSegmentationTask.distillation_loss

    def distillation_loss(self, outputs, target):
        (teacher,) = self._teacher
        seen.append((self, count_parameters(teacher), count_parameters(self.net)))
        return real_loss(self, outputs, target)

    monkeypatch.setattr(CardiacSegmentationTask, "distillation_loss", distillation_loss)
    cfg = compose_prune(
        [f"ckpt={trained}", "target.compression=3", "target.max_quality_drop=0.99"]
        + ["pruning.step_ratio=0.5", "pruning.ranking=uniform", "finetune.distill=0.5"]
        + [*NO_ONNX, f"paths.output_dir={tmp_path / 'p'}"]
    )
    s = sculpt(cfg)
    dense, pruned = count_parameters(UNet(1, 4, 4, 3)), count_parameters(UNet(1, 4, 2, 3))
    assert s["pruned"]["params"] == pruned  # one step of uniform halving meets 3x
    assert seen and {(t, n) for _, t, n in seen} == {(dense, pruned)}
    assert seen[0][0]._teacher is None


def test_dense_model_meeting_the_criteria_is_not_pruned(trained, tmp_path, monkeypatch):
    monkeypatch.setattr(Sculptor, "fine_tune", fail_fine_tune)
    cfg = compose_prune(
        [f"ckpt={trained}", "target.compression=1", *NO_ONNX, f"paths.output_dir={tmp_path / 'p'}"]
    )
    s = sculpt(cfg)
    assert s["stopped"] == "criteria met" and s["pruned"]["step"] == 0
    assert s["compression_ratio"] == 1.0 and len(s["steps"]) == 1
    # export.onnx=false: the program only, torch timings only
    assert (tmp_path / "p" / "model.pt2").is_file()
    assert not (tmp_path / "p" / "model.onnx").exists() and s["pruned"]["onnx_latency_ms"] is None


def fail_fine_tune(self, callbacks=None):
    raise AssertionError("fine-tuning started")


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        (["target.compression=1000000"], ValueError, "smallest model this architecture"),
        (["target.compression=null"], ValueError, "at least one of target.compression"),
        (
            ["pruning=global", "target.max_latency_ms=5"],
            ValueError,
            "target.max_latency_ms with pruning=global",
        ),
        (
            ["pruning=global", "sparsity=0.5", "target.compression=100"],
            ValueError,
            "sparsity=0.5 leaves",
        ),
        (["pruning.step_ratio=1.5"], ValueError, "pruning.step_ratio=1.5"),
        (["bench.input_size=[32]"], ValueError, "bench.input_size"),
        (["trainer=ddp"], ValueError, "trainer.devices=2: prune.py"),
        (["bench.input_size=[18,18]"], ValueError, "multiples of 4 px"),
        (["target.max_latency_ms=0.000001"], ValueError, "even the smallest model"),
        (["pruning=global", "finetune.epochs=0"], ValueError, "finetune.epochs=0"),
        (["target.max_params=12.5"], ValueError, "target.max_params=12.5"),
        (["finetune.distill=-1"], ValueError, "finetune.distill=-1.0: expected a loss weight"),
        (["finetune.recover_epochs=-2"], ValueError, "finetune.recover_epochs=-2"),
        (  # a floor of 8 channels keeps 4,900 of 7,492 parameters: 1.5x at most
            ["pruning.min_channels=8"],
            ValueError,
            r"pruning.min_channels=8 per prunable layer\) has 4,900 \(compression 1.5x",
        ),
        (["pruning.min_channels=0"], ValueError, "pruning.min_channels=0"),
        (["pruning=global", "finetune.recover_epochs=3"], ValueError, "recover_epochs=3 with"),
        (["finetune.distill=inf"], ValueError, "finetune.distill=inf"),
    ],
)
def test_bad_criteria_fail_before_any_fine_tuning(
    trained, tmp_path, monkeypatch, overrides, error, message
):
    monkeypatch.setattr(Sculptor, "fine_tune", fail_fine_tune)
    out = tmp_path / "p"
    cfg = compose_prune(
        [f"ckpt={trained}", "target.compression=2", *FAST, f"paths.output_dir={out}", *overrides]
    )
    with pytest.raises(error, match=message):
        sculpt(cfg)
    assert not (out / "summary.json").exists()


def test_missing_and_foreign_checkpoints_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="ckpt=.*nope.ckpt"):
        load_trained(tmp_path / "nope.ckpt")
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, foreign)
    with pytest.raises(ValueError, match="foreign.ckpt: not a medprune training checkpoint"):
        load_trained(foreign)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="garbage.ckpt: not a readable PyTorch checkpoint"):
        load_trained(garbage)


def test_checkpoints_carry_their_config_and_old_ones_use_the_run_folder(trained, tmp_path):
    cfg, checkpoint = load_trained(trained)
    assert cfg.task_name == "cardiac" and cfg.model.base_channels == 4
    # a checkpoint from before the config was embedded: read <run>/config.yaml instead
    del checkpoint[CONFIG_KEY]
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_bytes((trained.parent.parent / "config.yaml").read_bytes())
    old = run / "checkpoints" / "old.ckpt"
    torch.save(checkpoint, old)
    assert load_trained(old)[0].model.depth == 3
    moved = tmp_path / "a" / "b.ckpt"
    moved.parent.mkdir()
    torch.save(checkpoint, moved)
    with pytest.raises(ValueError, match="carries no config"):
        load_trained(moved)


def test_an_earlier_prune_run_is_not_overwritten(trained, tmp_path):
    out = tmp_path / "p"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    cfg = compose_prune([f"ckpt={trained}", "target.compression=2", f"paths.output_dir={out}"])
    with pytest.raises(FileExistsError, match="summary.json exists"):
        sculpt(cfg)
    assert (out / "summary.json").read_text() == "{}"


def test_train_refuses_structured_pruning_and_points_to_prune_py(tmp_path):
    tiny = [o for o in CARDIAC_TINY if not o.startswith("pruning.")]
    cfg = compose_train([*tiny, "pruning=structured"], tmp_path)
    with pytest.raises(ValueError, match="python prune.py ckpt="):
        validate_config(cfg)
