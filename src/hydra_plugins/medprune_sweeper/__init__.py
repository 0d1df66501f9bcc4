"""medprune's Hydra sweeper (``grid_sweeper.GridSweeper``): the basic grid, without the
repeats a dense baseline makes.

Hydra only instantiates sweepers found in the ``hydra_plugins`` namespace package, hence this
package beside ``medprune``. ``conf/hydra/sweeper/grid.yaml`` selects it for every multirun.
Nothing is imported here: Hydra lists a plugin once per module that holds it.
"""
