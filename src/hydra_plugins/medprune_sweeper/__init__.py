"""medprune's Hydra sweeper: the basic grid, without the repeats a dense baseline makes.

Hydra only instantiates sweepers found in the ``hydra_plugins`` namespace package, hence this
package beside ``medprune``. ``conf/hydra/sweeper/grid.yaml`` selects it for every multirun.
"""

from hydra_plugins.medprune_sweeper.grid_sweeper import GridSweeper, drop_ignored_overrides

__all__ = ["GridSweeper", "drop_ignored_overrides"]
