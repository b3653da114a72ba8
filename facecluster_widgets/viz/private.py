"""No control that sends faces off the machine: plotly's toolbar offers "Share chart…" (an upload to Plotly Cloud)
and "Edit in Chart Studio" unless its config says otherwise, and faces are biometric data.

A ``FigureWidget`` sends its ``_config`` to the browser; a plain ``go.Figure`` does not (its notebook display
uses the renderer's config), so the charts here are :class:`PrivateFigure`, which puts the config in its own
display bundle. No global plotly setting is touched.
"""

from __future__ import annotations

import plotly.graph_objects as go

#: Every upload or external-link control switched off; downloading a PNG (local) stays.
PRIVATE_CONFIG = {"showSendToCloud": False, "showEditInChartStudio": False, "showLink": False, "displaylogo": False,
                  "modeBarButtonsToRemove": ["sendChartToCloud", "sendDataToCloud", "editInChartStudio"]}
PLOTLY_MIME = "application/vnd.plotly.v1+json"


def private(fig: go.Figure) -> go.Figure:
    """``fig`` with :data:`PRIVATE_CONFIG` (what a FigureWidget sends to the browser with the figure)."""
    fig._config = {**(fig._config or {}), **PRIVATE_CONFIG}
    return fig


class PrivateFigure(go.Figure):
    """A ``go.Figure`` whose notebook display carries :data:`PRIVATE_CONFIG`."""

    def _repr_mimebundle_(self, include=None, exclude=None, validate=True, **kwargs):
        bundle = super()._repr_mimebundle_(include, exclude, validate, **kwargs)
        if isinstance(bundle, dict) and PLOTLY_MIME in bundle:
            bundle[PLOTLY_MIME] = {**bundle[PLOTLY_MIME],
                                   "config": {**(bundle[PLOTLY_MIME].get("config") or {}), **PRIVATE_CONFIG}}
        return bundle
