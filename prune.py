"""Sculpt a trained medprune model for CPU inference: ``python prune.py ckpt=<checkpoint> ...``.

Examples: ``python prune.py ckpt=<run>/checkpoints/last.ckpt target.compression=100``,
``python prune.py ckpt=<ckpt> target.max_latency_ms=5 pruning.ranking=uniform``.
``python prune.py --help`` lists the config groups and the composed config.
"""

import hydra
from omegaconf import DictConfig

from medprune.runs.config import register_configs
from medprune.runs.sculpting import sculpt

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="prune")
def main(cfg: DictConfig) -> None:
    sculpt(cfg)


if __name__ == "__main__":
    main()
