"""Plain ``nn.Module`` networks; they know nothing of Lightning or pruning."""

from medprune.models.two_branch import TwoBranchUNet
from medprune.models.unet import UNet

__all__ = ["TwoBranchUNet", "UNet"]
