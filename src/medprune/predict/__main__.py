"""Use a trained model: ``python -m medprune.predict model=<model> input=<file or folder>``.

``model`` is a train.py checkpoint (or run folder) or a deployment folder (prune.py's output,
or one written by ``export=<folder>``); ``labels=<folder>`` also scores every prediction.
``python -m medprune.predict --help`` lists every key. With a deployment folder and ONNX
Runtime, torch is never imported (see medprune.inference).
"""

import sys

import hydra
from omegaconf import DictConfig

from medprune.inference.predict import predict


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    status = predict(cfg)
    if status:
        sys.exit(status)


if __name__ == "__main__":
    main()
