"""Safety: no network at run time, nothing ever unpickled from a store, caches readable by the user only.

The network test runs a fresh interpreter whose sockets refuse to connect BEFORE the toolkit is imported, so
import-time calls count too; it extracts real photos with the default pipeline (every model) and clusters them.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from facecluster_widgets.errors import StoreError
from facecluster_widgets.store import Stage, open_store, read_npz

pytestmark = pytest.mark.slow  # real extraction in a subprocess

OFFLINE_RUN = r'''
import json, socket, sys
attempts = []

def refuse(name):
    def blocked(*args, **kwargs):
        attempts.append(f"{name}{args[1:] if name.startswith('socket.') else args}")
        raise OSError(f"network blocked by the test ({name})")
    return blocked

for name in ("connect", "connect_ex", "sendto", "sendmsg"):
    setattr(socket.socket, name, refuse(f"socket.{name}"))
socket.create_connection = refuse("create_connection")
socket.getaddrinfo = refuse("getaddrinfo")
socket.gethostbyname = refuse("gethostbyname")

import numpy as np
import facecluster_widgets as fc
from facecluster_widgets.cluster import HybridClustering

photos, store = sys.argv[1:-1], sys.argv[-1]
result = fc.extract(photos, store, progress=False)
features = result.features
model = HybridClustering(min_samples=2).fit(features, groups=result.table["image_id"].to_numpy(str))
print(json.dumps({"attempts": attempts, "faces": int((result.table["status"] == "ok").sum()),
                  "blocks": features.names, "valid": int(features.valid.sum()),
                  "labels": model.labels_.tolist()}))
'''


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory, lfw10):
    """(report, store path): the default pipeline + clustering on 6 photos of 2 people with sockets blocked."""
    people = sorted(p for p in lfw10.iterdir() if p.is_dir())[:2]
    photos = [str(p) for person in people for p in sorted(person.glob("*.jpg"))[:3]]
    store = tmp_path_factory.mktemp("offline") / "cache" / "store"
    env = {**os.environ, "HOME": str(store.parent.parent)}  # no user cache to fall back on
    done = subprocess.run([sys.executable, "-c", OFFLINE_RUN, *photos, str(store)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), store


def test_extract_and_cluster_make_no_network_call(offline_run):
    report, _ = offline_run
    assert report["attempts"] == []
    assert report["faces"] == 6 and report["valid"] == 6  # every model really ran, offline
    assert report["blocks"] == ["2d", "curvature", "geodesic", "identity", "shape"]
    labels = report["labels"]
    assert len(labels) == 6 and labels[0] >= 0 and len(set(labels[:3])) == 1  # one person's photos together
    assert labels[0] not in labels[3:]  # and apart from the other person's


def test_the_network_block_really_blocks():
    """The harness itself: a connection attempt is recorded and refused (so an empty list above means none)."""
    code = OFFLINE_RUN.split("import numpy as np")[0] + (
        "try:\n    socket.create_connection(('example.org', 80), timeout=1)\nexcept OSError:\n    pass\n"
        "print(attempts)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "create_connection" in done.stdout


def test_cache_files_are_private(offline_run):
    """Every folder the store created is 0700 and every file 0600, parents included, whatever the umask."""
    _, store = offline_run
    created = [store.parent, *store.parent.rglob("*")]
    assert len(created) > 20
    for path in created:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path} is {oct(mode)}"


class _Exploit:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _npz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _object_npy(marker: Path) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([_Exploit(marker)], dtype=object), allow_pickle=True)
    return buffer.getvalue()


@pytest.mark.parametrize("payload", ["object_array", "raw_pickle", "pickle_in_zip"])
def test_a_crafted_store_entry_is_refused_and_never_unpickled(tmp_path, payload):
    marker = tmp_path / "pwned"
    store = open_store(tmp_path / "s")
    stage = Stage("embed", 1)
    store.put(stage, "ab" * 16, {"embedding": np.zeros((1, 4))})
    entry = next((tmp_path / "s" / "objects").rglob("*.npz"))
    crafted = {
        "object_array": _npz({"embedding.npy": _object_npy(marker)}),
        "raw_pickle": pickle.dumps(_Exploit(marker)),
        "pickle_in_zip": _npz({"embedding.pkl": pickle.dumps(_Exploit(marker))}),
    }[payload]
    entry.write_bytes(crafted)
    with pytest.raises(StoreError, match="unreadable store entry|not an array"):
        read_npz(entry)
    assert store.get(stage, "ab" * 16) is None  # damaged: the pipeline recomputes it
    assert not marker.exists()


def test_crafted_arrays_tables_and_json_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    store = open_store(tmp_path / "s")
    store.write_array("feature_2d", np.zeros((2, 2)))
    (tmp_path / "s" / "arrays" / "feature_2d.npy").write_bytes(_object_npy(marker))
    with pytest.raises(StoreError, match="damaged array"):
        store.read_array("feature_2d")
    (tmp_path / "s" / "tables").mkdir()
    (tmp_path / "s" / "tables" / "faces.parquet").write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(StoreError, match="damaged table"):
        store.read_table("faces")
    (tmp_path / "s" / "run.json").write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(StoreError, match="damaged JSON"):
        store.read_json("run")
    assert not marker.exists()


def test_zip_bomb_entries_are_refused_before_unpacking(tmp_path):
    store = open_store(tmp_path / "s")
    store.put(Stage("x", 1), "ab" * 16, {"v": np.zeros(10_000)})
    entry = next((tmp_path / "s" / "objects").rglob("*.npz"))
    assert read_npz(entry).arrays["v"].shape == (10_000,)
    with pytest.raises(StoreError, match="zip bombs"):
        read_npz(entry, max_bytes=50_000)
