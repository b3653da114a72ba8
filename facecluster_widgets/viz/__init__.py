"""Plot factories: plain functions that turn the core's arrays into plotly and k3d objects (no ipywidgets here).

Like k3d's own factories, each casts its inputs (float32 coordinates, uint32 triangles, contiguous) and returns
one object; the widgets in :mod:`facecluster_widgets.widgets` arrange them and wire their callbacks. plotly and
k3d are imported when a factory module is imported, never by the core.
"""
