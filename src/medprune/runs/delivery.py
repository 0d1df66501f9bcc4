"""What ``prune.py`` hands back: the exported model, its CPU benchmark against the dense one,
``summary.json`` and ``report.md``.

Latencies are medians in ms at batch 1 on ``bench.input_size`` with ``bench.threads``
threads; the criteria in the summary are judged on these final measurements (the step table
keeps the ones each step was judged on while pruning).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from medprune.bench import onnx_latency, torch_latency
from medprune.inference.export import check_onnx, save_onnx, save_program
from medprune.inference.settings import settings_from_run, write_settings
from medprune.pruning.criteria import StepResult, Targets, criteria_met, quality_drop
from medprune.runs.int8 import quantize_step
from medprune.runs.job import export_sparse_model
from medprune.runs.sculptor import Sculptor
from medprune.runs.summary import write_summary

PROGRAM_FILE = "model.pt2"  # torch.export program: torch.export.load(path).module()
ONNX_FILE = "model.onnx"
BASELINE_ONNX_FILE = "baseline.onnx"  # the dense model, for the onnxruntime comparison


def _bench(sculptor: Sculptor, dense_net: nn.Module, export: dict[str, Any]) -> dict:
    """torch first, then onnxruntime: no ONNX session's threads run beside a torch timing."""
    bench = sculptor.cfg.bench
    args = (list(sculptor.example.shape), bench.threads, bench.warmup, bench.repeats)
    models = {"baseline": dense_net, "pruned": sculptor.module.net}
    result = {name: {"torch": torch_latency(net, *args)} for name, net in models.items()}
    for name, key in (("baseline", "baseline_onnx"), ("pruned", "onnx")):
        if key in export:  # export.onnx=false: torch only
            result[name]["onnxruntime"] = onnx_latency(Path(export[key]), *args)
    return result


def _export(sculptor: Sculptor, dense_net: nn.Module) -> dict[str, Any]:
    out, net, example = sculptor.out, sculptor.module.net, sculptor.example
    export = {"program": str(save_program(net, example, out / PROGRAM_FILE))}
    if sculptor.cfg.export.onnx:
        export["onnx"] = str(save_onnx(net, example, out / ONNX_FILE))
        export["baseline_onnx"] = str(save_onnx(dense_net, example, out / BASELINE_ONNX_FILE))
        # ONNX Runtime against eager torch on the same input: outside tolerance raises
        export["onnx_max_abs_diff"] = check_onnx(net, export["onnx"], example)
        export["baseline_onnx_max_abs_diff"] = check_onnx(
            dense_net, export["baseline_onnx"], example
        )
    if sculptor.cfg.pruning.scope in ("global", "layerwise"):  # zeros pay off in this file
        export["sparse"] = export_sparse_model(net, out, sculptor.cfg.pruning.export.dtype)
    return export


def _criteria(targets: Targets, base: StepResult, pick: StepResult, higher: bool) -> dict:
    met = criteria_met(pick, base, targets, higher)
    values = {
        "compression": base.params / pick.params,
        "max_params": pick.params,
        "max_latency_ms": pick.latency_ms,
        "max_quality_drop": quality_drop(base.quality, pick.quality, higher),
    }
    return {
        key: {"target": getattr(targets, key), "value": values[key], "met": ok}
        for key, ok in met.items()
    }


def deliver(
    *,
    sculptor: Sculptor,
    targets: Targets,
    dense: tuple[nn.Module, dict[str, Any]],
    baseline: tuple[StepResult, dict[str, float]],
    pruned: tuple[StepResult, dict[str, float], dict[str, Any]],
    steps: list[dict[str, Any]],
    stopped: str,
    trained_cfg: DictConfig,
) -> dict[str, Any]:
    """Export and benchmark the chosen model, write summary.json and report.md; return the
    summary. ``dense`` and ``pruned`` carry the task's checkpoint extras (e.g. the tuned
    watershed thresholds), which deployment needs next to the exported network."""
    cfg, out, higher = sculptor.cfg, sculptor.out, sculptor.higher_is_better
    dense_net = dense[0]
    export = _export(sculptor, dense_net)
    bench = _bench(sculptor, dense_net, export)
    int8 = None
    if cfg.export.int8:  # after the fp32 timings: no int8 session lives beside them
        fp32_ms = bench["pruned"]["onnxruntime"]["median_ms"]
        int8, bench["pruned"]["onnxruntime_int8"] = quantize_step(
            sculptor, Path(export["onnx"]), fp32_ms, baseline[0], baseline[1],
            targets.max_quality_drop,
        )  # fmt: skip
    # inference.json beside model.onnx / model.pt2: the folder is what prediction deploys
    settings = settings_from_run(
        OmegaConf.to_container(trained_cfg, resolve=True), pruned[2].get("postprocess")
    )
    if int8 is not None and int8["deployed"]:
        settings["onnx"] = Path(int8["path"]).name
    export["settings"] = str(
        write_settings(settings, out, checkpoint=str(cfg.ckpt), made_by="prune.py")
    )
    latency = {k: v["torch"]["median_ms"] for k, v in bench.items()}
    onnx = {
        k: v["onnxruntime"]["median_ms"] if "onnxruntime" in v else None for k, v in bench.items()
    }
    base = dataclasses.replace(baseline[0], latency_ms=latency["baseline"])
    pick = dataclasses.replace(pruned[0], latency_ms=latency["pruned"])
    summary = {
        "task": trained_cfg.task_name,
        "ckpt": str(cfg.ckpt),
        # the checkpoint's data config with this run's data.* overrides: what was scored
        "data": OmegaConf.to_container(trained_cfg.data, resolve=True),
        "pruning": OmegaConf.to_container(cfg.pruning, resolve=True),
        "main_metric": sculptor.metric,
        "baseline": {
            "metrics": baseline[1],
            "val_quality": base.quality,
            "params": base.params,
            "latency_ms": base.latency_ms,
            "onnx_latency_ms": onnx["baseline"],
            **dense[1],
        },
        "pruned": {
            "step": pick.step,
            "metrics": pruned[1],
            "val_quality": pick.quality,
            "params": pick.params,
            "latency_ms": pick.latency_ms,
            "onnx_latency_ms": onnx["pruned"],
            **pruned[2],
        },
        "compression_ratio": base.params / pick.params,
        "speedup": base.latency_ms / pick.latency_ms,
        "onnx_speedup": onnx["baseline"] / onnx["pruned"] if onnx["pruned"] else None,
        "quality_drop": quality_drop(base.quality, pick.quality, higher),
        "test_quality_drop": sculptor.test_quality_drop(baseline[1], pruned[1]),
        "criteria": _criteria(targets, base, pick, higher),
        "stopped": stopped,
        "steps": steps,
        "bench": bench,
        "export": export,
        **({} if int8 is None else {"int8": int8}),
        "output_dir": str(out),
    }
    summary["all_criteria_met"] = all(c["met"] for c in summary["criteria"].values())
    write_summary(summary, out / "summary.json")
    report = render_report(summary)
    (out / "report.md").write_text(report)
    print(report)
    return summary


def wandb_values(summary: dict[str, Any]) -> dict[str, Any]:
    """The numbers W&B's run table shows for a prune job."""
    values = {
        f"sculpt/{k}": summary[k]
        for k in ("compression_ratio", "speedup", "onnx_speedup", "quality_drop")
    }
    for side in ("baseline", "pruned"):
        for key in ("params", "latency_ms", "onnx_latency_ms", "val_quality"):
            values[f"{side}/{key}"] = summary[side][key]
        values.update({f"{side}/{k}": v for k, v in summary[side]["metrics"].items()})
    if "int8" in summary:
        q = summary["int8"]
        for key in ("val_quality", "onnx_latency_ms", "file_bytes", "quality_drop", "deployed"):
            values[f"int8/{key}"] = q[key]
        values.update({f"int8/{k}": v for k, v in q["metrics"].items()})
    return values


def render_report(s: dict[str, Any]) -> str:
    """report.md: the result in one table, the criteria, and every step."""
    b, p = s["baseline"], s["pruned"]
    metric = s["main_metric"]

    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    lines = [
        f"# prune.py report: {s['task']}, pruning={s['pruning']['scope']}",
        "",
        f"Checkpoint: `{s['ckpt']}`. Stopped: {s['stopped']}. Chosen: step {p['step']}.",
        f"Latency: median of {s['bench']['pruned']['torch']['repeats']} runs at batch 1, input "
        f"{s['bench']['pruned']['torch']['input_shape']}, "
        f"{s['bench']['pruned']['torch']['threads']} threads.",
        "",
        f"| model | params | {metric} | torch ms | onnxruntime ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, side in (("dense", b), ("pruned", p)):
        lines.append(
            f"| {name} | {side['params']:,} | {side['val_quality']:.4f} | "
            f"{side['latency_ms']:.2f} | {ms(side['onnx_latency_ms'])} |"
        )
    q = s.get("int8")
    if q is not None:
        lines.append(
            f"| pruned int8 | {p['params']:,} | {q['val_quality']:.4f} | n/a | "
            f"{ms(q['onnx_latency_ms'])} |"
        )
    lines += [
        "",
        f"Compression {s['compression_ratio']:.1f}x, speedup {s['speedup']:.2f}x (torch), "
        f"{ms(s['onnx_speedup'])}x (onnxruntime), quality drop {s['quality_drop']:+.2%} on val, "
        f"{s['test_quality_drop']:+.2%} on test.",
        "",
        "| criterion | target | value | met |",
        "| --- | ---: | ---: | --- |",
    ]
    for key, c in s["criteria"].items():
        value = "n/a" if c["value"] is None else f"{c['value']:,.4g}"
        lines.append(f"| {key} | {c['target']:,.4g} | {value} | {'yes' if c['met'] else 'NO'} |")
    if q is not None:
        lines += ["", *_int8_lines(s, q)]
    lines += [
        "",
        f"| step | params | compression | {metric} | torch ms | epochs |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in s["steps"]:
        lines.append(
            f"| {row['step']} | {row['params']:,} | {row['compression']:.1f}x | "
            f"{row['quality']:.4f} | {row['latency_ms']:.2f} | {row['epochs']} |"
        )
    return "\n".join(lines) + "\n"


def _int8_lines(s: dict[str, Any], q: dict[str, Any]) -> list[str]:
    """report.md's int8 part: the deployment decision, file sizes, the test metrics side by
    side (per structure for cardiac)."""
    speedup = s["pruned"]["onnx_latency_ms"] / q["onnx_latency_ms"]
    calibration = q["calibration"]
    lines = [
        f"int8 ({calibration['method']} calibration on {calibration['items']} training items): "
        f"{'deployed' if q['deployed'] else 'NOT deployed, the folder deploys fp32 model.onnx'}"
        f" ({q['reason']}). File {q['file_bytes'] / 1e6:.2f} MB vs "
        f"{q['fp32_file_bytes'] / 1e6:.2f} MB fp32; onnxruntime {speedup:.2f}x faster than fp32.",
        "",
        "| test metric | dense | pruned fp32 | pruned int8 |",
        "| --- | ---: | ---: | ---: |",
    ]
    for key, value in q["metrics"].items():
        dense, fp32 = s["baseline"]["metrics"].get(key), s["pruned"]["metrics"].get(key)
        cells = ["n/a" if v is None else f"{v:.4f}" for v in (dense, fp32, value)]
        lines.append(f"| {key} | {' | '.join(cells)} |")
    return lines
