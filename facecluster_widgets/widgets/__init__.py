"""Notebook widgets over the core: they arrange :mod:`facecluster_widgets.viz` figures and wire callbacks, and
never compute features themselves. Nothing else in the package imports this subpackage.

    from facecluster_widgets.widgets import ClusterExplorer, MeshViewer, ParameterSweep, PipelineStepper
    explorer = ClusterExplorer(store)                  # cluster, inspect, correct, export
    MeshViewer(store, row=0)                           # one face's 3D surface with its geodesic paths
    PipelineStepper(store, row=0)                      # one face through every stage of the method
    ParameterSweep(None, explorer=explorer, run=True)  # a metric over ε × λ; click a cell to move the explorer
"""

from .explorer import ClusterExplorer
from .mesh_viewer import MeshViewer
from .stepper import PipelineStepper
from .sweep import ParameterSweep

__all__ = ["ClusterExplorer", "MeshViewer", "ParameterSweep", "PipelineStepper"]
