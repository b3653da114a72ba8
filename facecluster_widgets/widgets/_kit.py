"""One explorer's shared layouts and styles.

Every ipywidgets control owns a Layout model and most a Style model unless it is given one; an explorer made ~250
models, and a page reload rebuilds every model of the kernel at once (with several explorers the burst outlasted
anywidget's 2 s start-up limit). ipywidgets lets widgets share a Layout or Style, so the widgets of one explorer that
look alike share one each. Per explorer, never module-wide: closing an explorer closes its models, which must not
pull the layout from under another explorer. A layout or style handed out here must never be changed in place
(that would restyle every widget sharing it): give a widget another one instead.
"""

from __future__ import annotations

import ipywidgets as w


class Kit:
    """``kit.look(w.Button, width="90px")`` → ``{"layout": ..., "style": ...}`` to pass to a widget; equal
    requests get the same instances."""

    def __init__(self) -> None:
        self._made: dict[tuple, w.Widget] = {}

    def layout(self, **css: str) -> w.Layout:
        return self._shared(w.Layout, **css)

    def _shared(self, kind: type, **attrs: str) -> w.Widget:
        """The one ``kind(**attrs)`` of this explorer (a Layout or a Style model)."""
        key = (kind, tuple(sorted(attrs.items())))
        if key not in self._made:
            self._made[key] = kind(**attrs)
        return self._made[key]

    def look(self, widget: type, style: dict | None = None, **css: str) -> dict:
        """Layout (and style, if ``widget`` has one) for a widget of class ``widget``."""
        shared: dict = {"layout": self.layout(**css)}
        trait = widget.class_traits().get("style")
        if trait is not None:
            shared["style"] = self._shared(trait.klass, **(style or {}))
        return shared

    def close(self) -> None:
        """Close every layout and style handed out (the explorer closes its widgets first)."""
        for model in self._made.values():
            model.close()
        self._made.clear()
