"""train(cfg) end to end on tiny settings, in process and through the train.py CLI."""

import csv
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, TINY, compose_train
from medprune.models import TwoBranchUNet
from medprune.pruning import prunable_parameters
from medprune.pruning.selection import DEFAULT_EXCLUDE
from medprune.pruning.sparse_file import load_sparse
from medprune.runs.training import train

METRICS = ["test/dice", "test/aji", "test/pq", "test/dq", "test/sq", "test/mse"]
PRUNING_KEYS = [
    "scope",
    "target_sparsity",
    "achieved_sparsity",
    "prunable_params",
    "nonzero_prunable_params",
    "total_params",
    "nonzero_params",
    "compression_ratio",
]
CALLBACK_KEYS = ["schedule", "targets", "mask_digests_per_rank"]


def load_net(ckpt, base_channels=4, depth=3):
    net = TwoBranchUNet(base_channels=base_channels, depth=depth)
    state = torch.load(ckpt, weights_only=False)["state_dict"]
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items()}, strict=True)
    return net


@pytest.fixture(
    scope="module", params=[("global", 0.9375), ("layerwise", 0.8), ("none", 0.0)], ids=str
)
def finished(request, tmp_path_factory):
    """One tiny run per scope, shared by the tests below: (scope, sparsity, folder, summary)."""
    scope, sparsity = request.param
    cfg = compose_train(
        [*TINY, f"pruning={scope}", f"sparsity={sparsity}"], tmp_path_factory.mktemp(scope)
    )
    train(cfg)
    out = ROOT / cfg.paths.output_dir
    return scope, sparsity, out, json.loads((out / "summary.json").read_text())


def test_summary_holds_every_key_and_the_test_metrics(finished):
    scope, sparsity, _, summary = finished
    assert summary["task"] == "nuclei"
    extra = CALLBACK_KEYS if scope != "none" else []
    assert list(summary["pruning"]) == [*PRUNING_KEYS, *extra, "branches", "layers"]
    assert set(summary["pruning"]["branches"]) == {"seg", "dist"}
    assert set(METRICS) <= set(summary["metrics"])
    assert summary["steps"] == 4 and summary["wall_time_s"] > 0
    assert summary["pruning"]["scope"] == scope
    assert summary["pruning"]["target_sparsity"] == pytest.approx(sparsity)
    assert ("export" in summary) == (scope != "none")


def test_summary_sparsity_is_measured_from_the_checkpoint(finished):
    # exactly round(s * n) zeros (layerwise rounds per layer); a pruned run keeps the first
    # convs and the heads dense
    scope, sparsity, out, summary = finished
    p = summary["pruning"]
    net = load_net(out / "checkpoints" / "last.ckpt")
    weights = prunable_parameters(net, exclude=DEFAULT_EXCLUDE if scope != "none" else ())
    assert list(p["layers"]) == list(weights)
    for name, layer in p["layers"].items():
        w = weights[name]
        assert layer["shape"] == list(w.shape) and layer["params"] == w.numel()
        assert layer["sparsity"] == pytest.approx(float((w == 0).float().mean()), abs=1e-6)
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    expected = {
        "global": round(sparsity * p["prunable_params"]),
        "layerwise": sum(round(sparsity * w.numel()) for w in weights.values()),
        "none": 0,
    }[scope]
    assert zeros == expected == p["prunable_params"] - p["nonzero_prunable_params"]
    assert p["achieved_sparsity"] == pytest.approx(zeros / p["prunable_params"])
    assert p["compression_ratio"] == pytest.approx(
        p["prunable_params"] / p["nonzero_prunable_params"]
    )


def test_sparsity_is_logged_at_every_mask_update(finished):
    scope, sparsity, out, summary = finished
    rows = list(csv.DictReader((out / "csv" / "version_0" / "metrics.csv").open()))
    updates = [r for r in rows if r.get("pruning/sparsity")]
    if scope == "none":
        assert not updates
        return
    # 4 steps: schedule 0..3 (begin round(0.4), end round(2.8)), frequency 1
    assert [int(r["step"]) for r in updates] == [0, 1, 2, 3]
    assert float(updates[-1]["pruning/target_sparsity"]) == sparsity
    achieved = summary["pruning"]["achieved_sparsity"]
    assert float(updates[-1]["pruning/sparsity"]) == pytest.approx(achieved)
    assert updates[-1]["pruning/sparsity_seg"] and updates[-1]["pruning/sparsity_dist"]
    assert len(summary["pruning"]["mask_digests_per_rank"]) == 1


def test_the_sparse_file_loads_back_with_identical_outputs(finished):
    scope, _, out, summary = finished
    if scope == "none":
        assert not (out / "model.sparse").exists()
        return
    export = summary["export"]
    assert export["path"] == str(out / "model.sparse") and export["dtype"] == "float32"
    assert export["sparse_bytes"] == (out / "model.sparse").stat().st_size
    assert export["sparse_bytes"] < export["dense_bytes"]
    net = load_net(out / "checkpoints" / "last.ckpt")
    fresh = TwoBranchUNet(base_channels=4, depth=3)
    fresh.load_state_dict(load_sparse(out / "model.sparse"), strict=True)
    x = torch.rand(2, 3, 32, 32)
    fresh.eval(), net.eval()
    with torch.no_grad():
        for a, b in zip(fresh(x), net(x)):
            assert torch.equal(a, b)


def test_the_run_folder_holds_best_checkpoint_and_the_resolved_config(finished):
    _, _, out, _ = finished
    assert (out / "checkpoints" / "best.ckpt").is_file()
    assert "${" not in (out / "config.yaml").read_text()


def test_a_run_never_overwrites_an_earlier_run(tiny_cfg):
    cfg = tiny_cfg("pruning=none")
    train(cfg)
    summary = ROOT / cfg.paths.output_dir / "summary.json"
    ckpt = summary.parent / "checkpoints" / "last.ckpt"
    ckpt_before = ckpt.read_bytes()
    with pytest.raises(FileExistsError, match="summary.json exists: .* holds an earlier run"):
        train(cfg)
    summary.unlink()  # even without a summary, its checkpoints are kept
    with pytest.raises(FileExistsError, match="checkpoints exists: .* holds an earlier run"):
        train(cfg)
    assert ckpt.read_bytes() == ckpt_before


def run_cli(args, tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run(
        [sys.executable, "train.py", *args, f"hydra.run.dir={tmp_path}/run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_main_command_with_wandb_logger(tmp_path):
    overrides = [o for o in TINY if not o.startswith("logger=")]
    proc = run_cli(["pruning=global", "sparsity=0.9375", "logger=wandb", *overrides], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["pruning"]["achieved_sparsity"] == pytest.approx(0.9375, abs=1e-4)
    assert "medprune summary: nuclei" in proc.stdout
    # the resolved prunable list is printed at start: first conv and heads kept dense
    printed = proc.stdout + proc.stderr
    assert "pruning: resolved layers" in printed
    assert re.search(r"seg\.encoder\.0\.0\.weight .* dense", printed)
    assert re.search(r"seg\.encoder\.1\.0\.weight .* prune  all -> 0\.9375", printed)
    # the run's log file holds Lightning's messages, the selection and the closing line
    log = (tmp_path / "run" / "train.log").read_text()
    assert "pruning: resolved layers" in log and "`Trainer.fit` stopped" in log
    assert "summary.json written in" in log and "sparsity 0.9375 of target 0.9375" in log


def test_cli_bad_pruning_config_stops_before_training(tmp_path):
    proc = run_cli(["pruning=global", "sparsity=1.5", *TINY], tmp_path)
    assert proc.returncode != 0
    assert (
        "pruning.target_sparsity (set by sparsity=)=1.5: expected a number in [0, 1)" in proc.stderr
    )
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_callback_entry_without_target_fails_naming_it(tiny_cfg):
    cfg = tiny_cfg("pruning=none", "+callbacks.my_callback.patience=3")
    with pytest.raises(ValueError, match="callbacks.my_callback has no _target_"):
        train(cfg)


def test_resume_mid_schedule_keeps_zeros_and_ends_at_target(tiny_cfg, tmp_path):
    # run A: 4 epochs of 2 steps, a checkpoint after every validated epoch; the schedule runs
    # from step 1 to 6 with updates at 1, 3, 5, 6 (frequency 2)
    every_epoch = [
        "callbacks.last_checkpoint.filename='epoch{epoch}'",
        "callbacks.last_checkpoint.save_top_k=-1",
        "+callbacks.last_checkpoint.auto_insert_metric_name=false",
    ]
    common = ["pruning=global", "sparsity=0.9375", "trainer.max_epochs=4", "pruning.frequency=2"]
    train(tiny_cfg(*common, *every_epoch))
    mid = tmp_path / "run" / "checkpoints" / "epoch1.ckpt"  # after 4 of 8 steps: "killed" here
    state = torch.load(mid, weights_only=False)
    (pruning_state,) = [v for k, v in state["callbacks"].items() if "GradualMagnitude" in k]
    assert 0.5 < pruning_state["current_targets"]["all"] < 0.9375  # mid-schedule
    assert pruning_state["last_update_step"] == 3
    # run B resumes from it in a new folder with the same config
    cfg_b = tiny_cfg(*common, f"ckpt_path={mid}")
    cfg_b.paths.output_dir = str(tmp_path / "resumed")
    summary = train(cfg_b)
    assert summary["steps"] == 8
    # the restored state is used: no update at the resume step 4, the next ones at 5 and 6
    rows = csv.DictReader((tmp_path / "resumed" / "csv" / "version_0" / "metrics.csv").open())
    assert [int(r["step"]) for r in rows if r.get("pruning/sparsity")] == [5, 6]
    before = load_net(mid)
    after = load_net(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    selected = prunable_parameters(before, exclude=DEFAULT_EXCLUDE)
    after_weights = dict(after.named_parameters())
    regrown = sum(int(((w == 0) & (after_weights[n] != 0)).sum()) for n, w in selected.items())
    assert regrown == 0
    total = sum(w.numel() for w in selected.values())
    zeros = sum(int((after_weights[n] == 0).sum()) for n in selected)
    assert zeros == round(0.9375 * total)
    assert summary["pruning"]["achieved_sparsity"] == pytest.approx(zeros / total)
    # and a pruned checkpoint's weights load into a fresh, unpruned model with strict=True
    fresh = TwoBranchUNet(base_channels=4, depth=3)
    fresh.load_state_dict(after.state_dict(), strict=True)


def test_a_failed_export_keeps_the_summary(tiny_cfg, monkeypatch):
    from medprune.runs import job

    def overflow(*args, **kwargs):
        raise ValueError("seg.head.weight: a value beyond float16's range")

    monkeypatch.setattr(job, "save_sparse", overflow)
    with pytest.warns(UserWarning, match="sparse export skipped: seg.head.weight"):
        summary = train(tiny_cfg("pruning=global"))
    written = json.loads((ROOT / summary["output_dir"] / "summary.json").read_text())
    assert written["export"] == {"error": "seg.head.weight: a value beyond float16's range"}
    assert written["pruning"]["achieved_sparsity"] == pytest.approx(0.9375, abs=1e-3)


def test_per_branch_targets_from_the_command_line(tiny_cfg):
    cfg = tiny_cfg("pruning=global", "pruning.targets.seg=0.9375", "pruning.targets.dist=0.95")
    summary = train(cfg)
    p = summary["pruning"]
    assert p["targets"] == {"seg": 0.9375, "dist": 0.95}
    net = load_net(ROOT / cfg.paths.output_dir / "checkpoints" / "last.ckpt")
    for branch, target in p["targets"].items():
        weights = prunable_parameters(getattr(net, branch), exclude=DEFAULT_EXCLUDE)
        total = sum(w.numel() for w in weights.values())
        assert sum(int((w == 0).sum()) for w in weights.values()) == round(target * total)
        assert p["branches"][branch] == pytest.approx(target, abs=1e-3)


def test_only_the_seg_branch_pruned(tiny_cfg):
    summary = train(tiny_cfg("pruning=layerwise", "pruning.targets.seg=0.75"))
    assert summary["pruning"]["targets"] == {"seg": 0.75}
    assert all(n.startswith("seg.") for n in summary["pruning"]["layers"])
    net = load_net(ROOT / summary["output_dir"] / "checkpoints" / "last.ckpt")
    assert all(torch.count_nonzero(w) == w.numel() for w in prunable_parameters(net.dist).values())


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (["sparsity=-0.1"], ValueError, r"pruning.target_sparsity \(set by sparsity=\)=-0.1"),
        (["sparsity=1.0"], ValueError, r"sparsity=\)=1.0: expected a number in \[0, 1\)"),
        (["+pruning.targets.cls=0.9"], ValueError, "pruning.targets.cls: the network has no"),
        (["pruning.targets.seg=1.2"], ValueError, r"pruning.targets.seg=1.2: expected"),
        (["pruning.include=[sge.*]"], ValueError, r"pruning.include pattern 'sge.\*' matches no"),
        (["pruning.include=[seg.*]", "pruning.exclude=[seg.*]"], ValueError, "selects no weights"),
        (["pruning.schedule=exp"], ValueError, "pruning.schedule='exp': expected one of"),
        (["pruning.export.dtype=int8"], ValueError, "pruning.export.dtype='int8': expected"),
        (
            ["pruning.rewind=0.5"],
            ValueError,
            r"pruning.rewind=0.5: expected .* in \[0, begin=0.1\)",
        ),
        (["pruning.rewind=0.05"], ValueError, "pruning.rewind=0.05 needs schedule=iter"),
        (["pruning.min_density=0.1"], ValueError, "unreachable with min_density=0.1"),
    ],
)
def test_bad_pruning_input_stops_before_any_data(tiny_cfg, monkeypatch, overrides, error, match):
    from medprune.data import nuclei_datamodule

    def no_data(*args, **kwargs):
        raise AssertionError("data was made before the pruning config was checked")

    monkeypatch.setattr(nuclei_datamodule.NucleiSyntheticDataModule, "__init__", no_data)
    cfg = tiny_cfg("pruning=global", *overrides)
    with pytest.raises(error, match=match):
        train(cfg)
    assert not (ROOT / cfg.paths.output_dir / "checkpoints").exists()


def test_ddp_on_two_cpu_ranks_has_equal_masks_and_logs_once(tmp_path):
    tiny = [o for o in TINY if o != "data.train_tiles=8"]
    proc = run_cli(
        ["trainer=ddp", "pruning=global", "sparsity=0.75", "data.train_tiles=16", *tiny],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "run"
    summary = json.loads((out / "summary.json").read_text())
    digests = summary["pruning"]["mask_digests_per_rank"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert summary["pruning"]["achieved_sparsity"] == pytest.approx(0.75, abs=1e-3)
    # 16 tiles / batch 4 / 2 ranks = 2 steps per epoch, 4 in all; updates at steps 0..3
    rows = list(csv.DictReader((out / "csv" / "version_0" / "metrics.csv").open()))
    updates = [int(r["step"]) for r in rows if r.get("pruning/sparsity")]
    assert updates == [0, 1, 2, 3]  # once per update, not once per rank
    assert summary["steps"] == 4
    # thresholds tuned on both ranks' val tiles (data.val_tiles=2, one per rank), not rank 0's
    assert summary["postprocess"]["search"]["tiles"] == 2
