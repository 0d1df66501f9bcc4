"""Train a medprune model: ``python train.py [group=option ...] [key=value ...]``.

Examples: ``python train.py pruning=global sparsity=0.9375``,
``python train.py -m pruning=global,layerwise sparsity=0.5,0.9375``.
``python train.py --help`` lists the config groups and the composed config.
"""

import hydra
from omegaconf import DictConfig

from medprune.runs.config import register_configs
from medprune.runs.training import train

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    train(cfg)


if __name__ == "__main__":
    main()
