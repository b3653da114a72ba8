"""A person's corrections to a clustering, kept in the store and re-applied after every re-clustering.

Cluster numbers are not stable (a new ε renumbers everything), so no edit stores a cluster number: each stores
the *faces* it was made on (stable face ids). After a clustering, the log is replayed in order on its labels:

- **merge** (clusters → one): every cluster whose faces are MORE THAN HALF from the merged faces is claimed; the
  claimed clusters become one (the smallest id). A cluster that only touches the merged faces is left alone.
- **split** (faces → a new cluster): pinned. Those faces always form a cluster of their own, whatever the
  clustering did with them (a later edit may still move them).
- **assign** (faces → an existing cluster, e.g. accepting a "possible match"): the faces join the cluster that
  now holds most of the target cluster's faces at the time of the edit.
- **not this person** (face ≠ cluster): a must-not link. If the face lands in the cluster that now holds most of
  that cluster's other faces, it is forced out to −1 (the unknown pool). Cannot-link inside the estimator would
  need one group per person; forcing −1 after the fact gives the same guarantee and never moves other faces.
- **name** (a cluster → a name): resolved last, on the final labels. The name goes to the cluster with the
  LARGEST OVERLAP with the faces named; ties go to the smaller cluster id. If two names claim one cluster the
  later name wins (renaming a cluster is naming it again); a name none of whose faces is in a cluster any more
  is reported as unplaced. Two clusters may carry one name (both are that person until merged).

Faces of an edit that are no longer in the collection are ignored, so a log survives a re-extraction.
The log is JSON in the store (``edits.json``), never a pickle; :meth:`EditLog.undo` drops the last edit.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import FaceclusterError, StoreError
from ..store import Store

#: The store entry holding the log (``<store>/edits.json``).
STORE_KEY = "edits"
FORMAT = "facecluster-edits"
FORMAT_VERSION = 1
KINDS = ("merge", "split", "assign", "not_person", "name")
#: Longest cluster name kept; longer names are refused, not cut (a cut name could collide with another).
MAX_NAME_LENGTH = 120


class EditError(FaceclusterError, ValueError):
    """An edit that cannot be made (no faces, unknown kind, empty or overlong name, damaged log)."""


@dataclass(frozen=True)
class Edit:
    """One correction. ``faces``: the faces acted on; ``anchor``: the faces of the target cluster(s) when the edit
    was made (what identifies "that cluster" after re-clustering); ``name`` for kind "name"."""

    kind: str
    faces: tuple[str, ...] = ()
    anchor: tuple[str, ...] = ()
    name: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise EditError(f"unknown edit kind {self.kind!r}; kinds are {', '.join(KINDS)}")
        if self.kind in ("split", "assign", "not_person") and not self.faces:
            raise EditError(f"a {self.kind!r} edit needs at least one face")
        if self.kind in ("merge", "assign", "not_person", "name") and not self.anchor:
            raise EditError(f"a {self.kind!r} edit needs the faces of its cluster")
        if self.kind == "name":
            object.__setattr__(self, "name", check_name(self.name))

    def to_dict(self) -> dict:
        out = {"kind": self.kind, "faces": list(self.faces), "anchor": list(self.anchor)}
        if self.name is not None:
            out["name"] = self.name
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Edit:
        try:
            return cls(kind=str(data["kind"]), faces=tuple(str(f) for f in data.get("faces", ())),
                       anchor=tuple(str(f) for f in data.get("anchor", ())), name=data.get("name"))
        except (KeyError, TypeError, AttributeError) as exc:
            raise EditError(f"malformed edit record {data!r} ({exc})") from exc


def check_name(name: object) -> str:
    """A cluster name as typed, trimmed; control characters are refused (they hide text in tables and files).

    Names are stored as given otherwise: escaping is the job of whatever renders them (HTML) and the export makes
    its own safe file names, so ``"../../etc"`` is a valid name that can never become a path.
    """
    if not isinstance(name, str):
        raise EditError(f"a cluster name must be text, got {type(name).__name__}")
    text = name.strip()
    if not text:
        raise EditError("a cluster name cannot be empty")
    if len(text) > MAX_NAME_LENGTH:
        raise EditError(f"a cluster name is at most {MAX_NAME_LENGTH} characters, got {len(text)}")
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in text):
        raise EditError(f"cluster name {text!r} contains control characters")
    return text


@dataclass
class EditLog:
    """The ordered corrections of one collection; :meth:`apply` replays them on a clustering."""

    edits: list[Edit] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.edits)

    def add(self, edit: Edit) -> Edit:
        self.edits.append(edit)
        return edit

    def undo(self) -> Edit | None:
        """Drop the last edit (returned), or ``None`` when there is none."""
        return self.edits.pop() if self.edits else None

    # -- persistence ---------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"format": FORMAT, "version": FORMAT_VERSION, "edits": [e.to_dict() for e in self.edits]}

    @classmethod
    def from_json(cls, data: dict, source: str = "edits") -> EditLog:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise EditError(f"{source}: not an edit log (format {found!r})")
        if int(data.get("version", 0)) > FORMAT_VERSION:
            raise EditError(f"{source}: edit log version {data.get('version')} is newer than this toolkit")
        return cls([Edit.from_dict(d) for d in data.get("edits", [])])

    def save(self, store: Store) -> None:
        store.write_json(STORE_KEY, self.to_json())

    @classmethod
    def load(cls, store: Store) -> EditLog:
        """The store's log, or an empty one when it has none yet."""
        path = store.root / f"{STORE_KEY}.json"
        if not path.exists():
            return cls()
        try:
            return cls.from_json(store.read_json(STORE_KEY), source=str(path))
        except StoreError as exc:
            raise EditError(str(exc)) from exc

    # -- replay --------------------------------------------------------------------------------
    def apply(self, labels: np.ndarray, face_ids: Sequence[str]) -> Applied:
        """Replay the log on ``labels`` (−1 = noise) of the faces ``face_ids``; see the module docstring."""
        return apply_edits(labels, face_ids, self.edits)


@dataclass(frozen=True)
class Applied:
    """Labels after the edits, the name of each named cluster, and the names that found no cluster."""

    labels: np.ndarray
    names: dict[int, str]
    unplaced: tuple[str, ...] = ()


def apply_edits(labels: np.ndarray, face_ids: Sequence[str], edits: Iterable[Edit]) -> Applied:
    """Functional form of :meth:`EditLog.apply`."""
    out = np.asarray(labels, dtype=np.int64).copy()
    index = {fid: i for i, fid in enumerate(face_ids)}

    def rows(ids: Iterable[str]) -> np.ndarray:
        return np.array(sorted({index[f] for f in ids if f in index}), dtype=np.intp)

    claims: list[tuple[str, np.ndarray]] = []
    for edit in edits:
        faces, anchor = rows(edit.faces), rows(edit.anchor)
        if edit.kind == "merge":
            claimed = majority_clusters(out, anchor)
            if len(claimed) >= 2:
                out[np.isin(out, claimed)] = min(claimed)
        elif edit.kind == "split":
            if faces.size:
                out[faces] = out.max(initial=-1) + 1
        elif edit.kind == "assign":
            target = identify(out, np.setdiff1d(anchor, faces))
            if target is not None and faces.size:
                out[faces] = target
        elif edit.kind == "not_person":
            target = identify(out, np.setdiff1d(anchor, faces))
            if target is not None and faces.size:
                out[faces[out[faces] == target]] = -1
        else:
            claims.append((edit.name, anchor))
    names: dict[int, str] = {}
    unplaced: list[str] = []
    for name, anchor in reversed(claims):  # later names first: renaming a cluster is naming it again
        target = identify(out, anchor)
        if target is None:
            unplaced.append(name)
        elif target not in names:
            names[target] = name
    unplaced = [n for n in dict.fromkeys(reversed(unplaced)) if n not in names.values()]
    return Applied(labels=out, names=names, unplaced=tuple(unplaced))


def identify(labels: np.ndarray, anchor: np.ndarray) -> int | None:
    """The cluster holding most of the ``anchor`` faces (ties: smaller id), or ``None`` if all are noise."""
    if anchor.size == 0:
        return None
    held = labels[anchor]
    held = held[held >= 0]
    if held.size == 0:
        return None
    values, counts = np.unique(held, return_counts=True)
    return int(values[np.argmax(counts)])  # np.unique sorts, argmax takes the first maximum: the smaller id


def majority_clusters(labels: np.ndarray, anchor: np.ndarray) -> list[int]:
    """Clusters more than half of whose faces are ``anchor`` faces."""
    if anchor.size == 0:
        return []
    inside = np.zeros(labels.shape[0], dtype=bool)
    inside[anchor] = True
    out = []
    for label in np.unique(labels[anchor]):
        if label < 0:
            continue
        members = labels == label
        if 2 * int((members & inside).sum()) > int(members.sum()):
            out.append(int(label))
    return out
