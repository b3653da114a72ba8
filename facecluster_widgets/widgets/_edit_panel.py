"""The explorer's Edit tab: merge / split / "not this person" / name, undo and redo, the possible-matches queue of
one cluster (add or reject candidates one by one or several at once) and ranked "same person?" cluster pairs
with their faces side by side and a merge button each.

The queue keeps its cluster while a person works through it: it changes only when a face of ANOTHER cluster is
focused, never when a candidate (a face in no cluster) is clicked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import ipywidgets as w

from ..errors import FaceclusterError
from ..review.session import ClusterSession, ClusterView
from ._gallery import Gallery
from ._kit import Kit
from ._pairs import Pairs
from ._thumbs import Thumbnails, esc

#: Candidates in the queue, "same person?" pairs listed, faces shown of each cluster of a pair.
MATCHES = 12
PAIRS = 6
PAIR_FACES = 4


class Host(Protocol):
    """What the panel needs from the explorer."""

    session: ClusterSession
    thumbs: Thumbnails
    selected: list[int]
    focus: int

    def edited(self, view: ClusterView, message: str) -> None: ...


def _button(label: str, tip: str, action: Callable[[], None], guard: Callable, kit: Kit) -> w.Button:
    button = w.Button(description=label, tooltip=tip, **kit.look(w.Button, width="auto"))
    button.on_click(lambda _b: guard(action))
    return button


class EditPanel(w.VBox):
    """Corrections on the explorer's selection; :meth:`refresh` after every new view or selection."""

    def __init__(self, host: Host, guard: Callable, kit: Kit | None = None) -> None:
        self.kit = kit = kit or Kit()
        html, box = kit.look(w.HTML), kit.look(w.Box)
        self.host = host
        self.queue_label: int | None = None  # the cluster whose possible matches are listed
        self.selection_info = w.HTML(**html)
        self.selection_info.add_class("fc-edit-selection")
        self.name_text = w.Text(placeholder="name for the cluster of the focused face",
                                **kit.look(w.Text, width="300px"))
        specs = {
            "merge": ("merge clusters", "merge every cluster with a selected face into one", self.merge),
            "split": ("split off", "put the selected faces in a new cluster of their own", self.split),
            "not_person": ("not this person", "move the selected faces out of their cluster, for good",
                           self.not_person),
            "name": ("name", "name the cluster of the focused face", self.name),
            "accept": ("add to cluster", "put the selected candidates into the queue's cluster", self.accept),
            "reject": ("reject", "the selected candidates are not this cluster's person: drop them from "
                       "its queue for good", self.reject),
            "unknown": ("select unknown pool", "select every face in no cluster", self.select_unknown),
            "undo": ("undo", "take back the last correction", self.undo),
            "redo": ("redo", "put back the correction undone last", self.redo),
        }
        self.buttons = {key: _button(label, tip, action, guard, kit) for key, (label, tip, action) in specs.items()}
        self.matches_title = w.HTML(**html)
        self.matches_title.add_class("fc-matches-title")
        self.matches = Gallery(**kit.look(Gallery))
        self.matches.add_class("fc-matches")
        self.pairs_title = w.HTML("<b>Same person?</b> <small>cluster pairs whose faces sit nearest each other's "
                                  "centre, nearest first</small>", **html)
        self.pairs = Pairs(**kit.look(Pairs))
        self.pairs.observe(lambda c: guard(self._merge_clicked, c["new"]), names=["merge"])
        self._pairs: list = []
        self.info = w.HTML(**html)
        self.info.add_class("fc-edit-info")
        b = self.buttons
        super().__init__([
            self.selection_info,
            w.HBox([b["merge"], b["split"], b["not_person"], b["undo"], b["redo"]], **box),
            w.HBox([self.name_text, b["name"]], **box),
            w.HTML("<b>Possible matches</b> <small>(faces in no cluster nearest the cluster's centre; click one or "
                   "several, then add them or say they are not this person)</small>", **html),
            self.matches_title, self.matches, w.HBox([b["accept"], b["reject"], b["unknown"]], **box),
            self.pairs_title, self.pairs, self.info,
        ], **box)

    # -- drawing ---------------------------------------------------------------------------------
    def refresh(self, view: ClusterView) -> None:
        host = self.host
        chosen = sorted({int(view.labels[r]) for r in host.selected})
        named = ", ".join(view.name_of(c) for c in chosen[:6]) + (" …" if len(chosen) > 6 else "")
        n = len(host.selected)
        self.selection_info.value = (f"<b>{n}</b> face{'s' if n != 1 else ''} selected"
                                     + (f" from: {esc(named)}" if chosen else
                                        " <small>(click, lasso or box-select in the map, or click in the gallery; "
                                        "shift adds)</small>"))
        self.buttons["undo"].disabled = not host.session.can_undo
        self.buttons["redo"].disabled = not host.session.can_redo
        self._follow_focus(view)
        self._refresh_queue(view)
        self._refresh_pairs(view)

    def _follow_focus(self, view: ClusterView) -> None:
        focus = self.host.focus
        if 0 <= focus < len(view.labels) and view.labels[focus] >= 0:
            self.queue_label = int(view.labels[focus])
        if self.queue_label is not None and not (view.labels == self.queue_label).any():
            self.queue_label = None  # merged away or emptied

    def _refresh_queue(self, view: ClusterView) -> None:
        label = self.queue_label
        if label is None:
            self.matches_title.value = "<small>click a face in a cluster to see that cluster's queue</small>"
            self.matches.rows = []
            return
        queue = self.host.session.possible_matches(label, MATCHES, view)
        self.matches_title.value = (f"<small>for <b>{esc(view.name_of(label))}</b>: {len(queue)} "
                                    f"candidate{'s' if len(queue) != 1 else ''}</small>")
        names = self.host.session.faces.relative_names
        thumbs = self.host.thumbs
        self.matches.rows = [{"label": -1, "title": "nearest first", "members": [r for r, _ in queue],
                              "faces": [{"row": r, "src": thumbs.uri(r), "tip": f"{names[r]} ({d:.2f})"}
                                        for r, d in queue], "more": 0}] if queue else []

    def _refresh_pairs(self, view: ClusterView) -> None:
        self._pairs = self.host.session.similar_pairs(PAIRS, view)
        thumbs = self.host.thumbs

        def side(label: int) -> dict:
            members = view.members(label)
            return {"label": int(label), "title": f"{view.name_of(label)} · {members.size}",
                    "faces": [thumbs.uri(int(r)) for r in members[:PAIR_FACES]]}

        self.pairs.pairs = [{"a": side(p.a), "b": side(p.b), "distance": f"{p.distance:.2f}"} for p in self._pairs]

    # -- actions -----------------------------------------------------------------------------------
    @property
    def view(self) -> ClusterView:
        return self.host.session.view

    def _clusters_of(self, rows: Sequence[int]) -> list[int]:
        return sorted({int(self.view.labels[r]) for r in rows if self.view.labels[r] >= 0})

    def merge(self) -> None:
        chosen = self._clusters_of(self.host.selected)
        self.host.edited(self.host.session.merge(chosen), f"merged {len(chosen)} clusters")

    def _merge_clicked(self, click: dict) -> None:
        i = int(click.get("i", -1))
        if not 0 <= i < len(self._pairs) or (self._pairs[i].a, self._pairs[i].b) != (click.get("a"), click.get("b")):
            raise FaceclusterError("the 'same person?' list changed before the click arrived; nothing was merged")
        self.merge_pair(i)

    def merge_pair(self, i: int) -> None:
        """Merge the ``i``-th listed pair (nearest first)."""
        pair = self._pairs[i]
        names = (self.view.name_of(pair.a), self.view.name_of(pair.b))
        self.host.edited(self.host.session.merge([pair.a, pair.b]), f"merged {names[0]} and {names[1]}")

    def split(self) -> None:
        rows = list(self.host.selected)
        view = self.host.session.split(rows)
        self.host.edited(view, f"split off {len(rows)} face{'s' if len(rows) != 1 else ''} into a new cluster")

    def not_person(self) -> None:
        host = self.host
        rows = list(host.selected) or ([host.focus] if host.focus >= 0 else [])
        view = host.session.not_person(rows)
        host.edited(view, f"{len(rows)} face{'s' if len(rows) != 1 else ''} moved to the unknown pool for good")

    def name(self) -> None:
        focus = self.host.focus
        if not (0 <= focus < len(self.view.labels)) or self.view.labels[focus] < 0:
            raise FaceclusterError("focus a face that is in a cluster (click it), then name its cluster")
        label = int(self.view.labels[focus])
        view = self.host.session.name(label, self.name_text.value)
        self.host.edited(view, f"named the cluster {self.name_text.value.strip()!r}")

    def _candidates(self) -> list[int]:
        if self.queue_label is None:
            raise FaceclusterError("click a face in a cluster first: its queue of possible matches appears here")
        rows = [r for r in self.host.selected if self.view.labels[r] < 0]
        if not rows:
            raise FaceclusterError("click one or several possible matches (faces in no cluster) first")
        return rows

    def accept(self) -> None:
        rows, label = self._candidates(), self.queue_label
        name = self.view.name_of(label)
        view = self.host.session.assign(rows, label)
        self.host.selected = []
        self.host.edited(view, f"added {len(rows)} face{'s' if len(rows) != 1 else ''} to {name}")

    def reject(self) -> None:
        rows, label = self._candidates(), self.queue_label
        view = self.host.session.reject(rows, label)
        self.host.selected = []
        self.host.edited(view, f"{len(rows)} candidate{'s' if len(rows) != 1 else ''} marked not "
                               f"{view.name_of(label)}")

    def select_unknown(self) -> None:
        self.host.selected = self.host.session.unknown_pool(self.view).tolist()

    def undo(self) -> None:
        self.host.edited(self.host.session.undo(), "undid the last correction")

    def redo(self) -> None:
        self.host.edited(self.host.session.redo(), "redid the correction")
