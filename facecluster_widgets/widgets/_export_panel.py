"""The explorer's Export tab: the clustering as shown (corrections and names included) as a CSV or JSON table, or
a folder per cluster of links to or copies of the photos. Each export replaces the previous message."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as w

from ._kit import Kit
from ._thumbs import esc

FORMATS = (("CSV table", "csv"), ("JSON table", "json"), ("folders of links", "symlink"),
           ("folders of copies", "copy"))


class ExportPanel(w.VBox):
    """Path, format, button and ONE message line (success or error, the latest only)."""

    def __init__(self, export: Callable[[str, str], object], kit: Kit | None = None) -> None:
        kit = kit or Kit()
        self._export = export
        self.path = w.Text(value="facecluster-export", description="to", **kit.look(w.Text, width="360px"))
        self.format = w.Dropdown(options=FORMATS, value="csv", **kit.look(w.Dropdown, width="170px"))
        self.button = w.Button(description="export", **kit.look(w.Button, width="90px"))
        self.button.on_click(lambda _b: self.run())
        self.result = w.HTML(**kit.look(w.HTML))
        self.result.add_class("fc-export-result")
        self.path.observe(lambda _c: self._clear(), names=["value"])
        self.format.observe(lambda _c: self._clear(), names=["value"])
        super().__init__([w.HBox([self.path, self.format, self.button], **kit.look(w.Box)), self.result],
                         **kit.look(w.Box))
        self.add_class("fc-export")

    def _clear(self) -> None:
        self.result.value = ""

    def run(self) -> None:
        self.result.value = "<small>exporting…</small>"
        try:
            result = self._export(self.path.value, self.format.value)
        except Exception as exc:  # shown here, where the person looks after clicking
            self.result.value = f"<small style='color:#c00'>⚠ export failed: {esc(exc)}</small>"
            return
        if isinstance(result, dict):
            errors = f", {len(result['errors'])} photo(s) missing" if result["errors"] else ""
            text = f"{result['files']} photos in {result['folders']} folders under {result['target']}{errors}"
        else:
            text = f"wrote {result}"
        self.result.value = f"<small style='color:#2a7a2a'>✓ {esc(text)}</small>"
