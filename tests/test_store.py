"""The store: content-keyed, atomic, pickle-free, private, and it invalidates only what changed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from facecluster_widgets.errors import StoreError
from facecluster_widgets.store import Stage, open_store

ID = "0123456789abcdef0123456789abcdef"


def test_round_trip_and_meta(tmp_path):
    store = open_store(tmp_path / "s")
    stage = Stage("embed", 1, {"model": "dlib"})
    store.put(stage, ID, {"x": np.arange(4, dtype=np.float32)}, {"note": "ok", "n": np.int64(3)})
    got = store.get(stage, ID)
    assert np.array_equal(got.arrays["x"], np.arange(4)) and got.meta == {"note": "ok", "n": 3}
    assert store.has(stage, ID) and stage.key in store.stage_keys()


def test_stage_key_follows_parameters_and_upstream():
    a = Stage("detect", 1, {"backend": "mediapipe", "min_score": 0.5})
    b = Stage("detect", 1, {"backend": "mediapipe", "min_score": 0.6})
    assert a.key != b.key and a.key == Stage("detect", 1, {"min_score": 0.5, "backend": "mediapipe"}).key
    assert Stage("embed", 1, {}, (a,)).key != Stage("embed", 1, {}, (b,)).key
    assert Stage("detect", 2, dict(a.params)).key != a.key


def test_object_arrays_are_refused(tmp_path):
    store = open_store(tmp_path / "s")
    with pytest.raises(StoreError, match="pickle"):
        store.put(Stage("x", 1), ID, {"bad": np.array([{"a": 1}], dtype=object)})


def test_pickled_payload_is_never_loaded(tmp_path):
    store = open_store(tmp_path / "s")
    stage = Stage("x", 1)
    store.put(stage, ID, {"v": np.zeros(2)})
    path = next((tmp_path / "s" / "objects").rglob("*.npz"))
    np.savez(path, v=np.array([object()], dtype=object))  # a payload that only unpickling could read
    assert store.get(stage, ID) is None  # treated as damaged → recomputed, never unpickled


def test_damaged_entry_is_recomputed_not_fatal(tmp_path):
    store = open_store(tmp_path / "s")
    stage = Stage("x", 1)
    store.put(stage, ID, {"v": np.zeros(2)})
    path = next((tmp_path / "s" / "objects").rglob("*.npz"))
    path.write_bytes(path.read_bytes()[:20])
    assert store.get(stage, ID) is None


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    store = open_store(tmp_path / "s")
    frame = pd.DataFrame({"a": [1, 2]})
    store.write_table("faces", frame)

    class Boom(pd.DataFrame):
        def to_parquet(self, *args, **kwargs):
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        store.write_table("faces", Boom({"a": [9]}))
    assert store.read_table("faces")["a"].tolist() == [1, 2]
    assert not [p for p in (tmp_path / "s" / "tables").iterdir() if p.name.endswith(".tmp")]


def test_files_and_folders_are_private(tmp_path):
    store = open_store(tmp_path / "s")
    store.put(Stage("x", 1), ID, {"v": np.zeros(1)})
    store.write_array("feature_2d", np.zeros((1, 2), np.float32))
    for path in (tmp_path / "s").rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is readable by others ({oct(mode)})"


def test_refuses_a_foreign_non_empty_folder(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "mine.jpg").write_bytes(b"precious")
    with pytest.raises(StoreError, match="not empty"):
        open_store(tmp_path / "photos")
    assert (tmp_path / "photos" / "mine.jpg").read_bytes() == b"precious"
    with pytest.raises(StoreError, match="no store here"):
        open_store(tmp_path / "elsewhere", create=False)


def test_newer_format_is_refused(tmp_path):
    open_store(tmp_path / "s")
    (tmp_path / "s" / "STORE.json").write_text('{"format": "facecluster-store", "version": 99}')
    with pytest.raises(StoreError, match="newer"):
        open_store(tmp_path / "s")


def test_entry_names_cannot_escape_the_store(tmp_path):
    store = open_store(tmp_path / "s")
    with pytest.raises(StoreError):
        store.write_array("../../evil", np.zeros(1))
    with pytest.raises(StoreError):
        store.get(Stage("x", 1), "../../etc/passwd")


def test_arrays_load_without_pickle(tmp_path):
    store = open_store(tmp_path / "s")
    store.write_array("feature_2d", np.eye(3, dtype=np.float32))
    assert np.array_equal(store.read_array("feature_2d"), np.eye(3))
    assert os.path.exists(tmp_path / "s" / "arrays" / "feature_2d.npy")


def test_stale_temporaries_of_killed_writers_are_removed_young_ones_kept(tmp_path):
    store = open_store(tmp_path / "s")
    stage = Stage("embed", 1, {"model": "dlib"})
    store.put(stage, ID, {"x": np.ones(3)})
    entry = next((tmp_path / "s" / "objects").rglob("*.npz"))
    old = entry.parent / f".{entry.name}.abc123.tmp"  # as atomic_write names them
    young = entry.parent / f".{entry.name}.def456.tmp"
    for path in (old, young):
        path.write_bytes(b"half a file")
    hours_ago = os.path.getmtime(young) - 2 * 3600
    os.utime(old, (hours_ago, hours_ago))
    assert store.remove_stale_temporaries() == 1
    assert not old.exists() and young.exists() and entry.exists()
    assert store.get(stage, ID) is not None
    assert store.remove_stale_temporaries(older_than=0.0) == 1 and not young.exists() and entry.exists()


def test_adopt_takes_what_the_store_lacks_and_keeps_what_it_has(tmp_path):
    a, b = open_store(tmp_path / "a"), open_store(tmp_path / "b")
    stage = Stage("probe", 1, {"k": 1})
    a.put(stage, "ab" * 16, {"x": np.arange(3)})
    a.put(stage, "cd" * 16, {"x": np.arange(4)})
    b.put(stage, "cd" * 16, {"x": np.zeros(2)})
    assert b.adopt(a) == 1 and b.adopt(a) == 0
    np.testing.assert_array_equal(b.get(stage, "ab" * 16).arrays["x"], np.arange(3))
    np.testing.assert_array_equal(b.get(stage, "cd" * 16).arrays["x"], np.zeros(2))  # its own result stays
    assert stage.key in b.stage_keys()


@pytest.mark.slow
def test_two_processes_contending_for_the_lock_take_turns(tmp_path):
    """Two processes in Store.lock() at once: their critical sections never overlap. Both start their loop on
    the same signal while the test holds the lock, so they contend from the moment it is released."""
    store = open_store(tmp_path / "s")
    log = tmp_path / "log"
    code = ("import sys, time\n"
            "from facecluster_widgets.store import open_store\n"
            "store, log, name = open_store(sys.argv[1]), sys.argv[2], sys.argv[3]\n"
            "print('ready', flush=True)\n"
            "sys.stdin.readline()\n"
            "for _ in range(8):\n"
            "    with store.lock():\n"
            "        open(log, 'a').write(f'enter {name}\\n')\n"
            "        time.sleep(0.05)\n"
            "        open(log, 'a').write(f'leave {name}\\n')\n")
    writers = [subprocess.Popen([sys.executable, "-c", code, str(store.root), str(log), name],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for name in "ab"]
    assert [w.stdout.readline().strip() for w in writers] == ["ready", "ready"]
    with store.lock():
        for w in writers:
            w.stdin.write("go\n")
            w.stdin.close()
    assert [w.wait(60) for w in writers] == [0, 0]
    events = [line.split() for line in log.read_text().splitlines()]
    assert len(events) == 32
    for enter, leave in zip(events[0::2], events[1::2], strict=True):
        assert enter[0] == "enter" and leave == ["leave", enter[1]], events
    assert sorted(name for _, name in events) == ["a"] * 16 + ["b"] * 16
