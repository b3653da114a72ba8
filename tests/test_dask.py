"""extract(..., client=...) on a LocalCluster of 2 worker processes: the workers compute every stage into the same
store, and the result is the serial run's, feature for feature."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import facecluster_widgets as fc
from facecluster_widgets.errors import FaceclusterError
from facecluster_widgets.pipeline.dask_runner import PLUGIN_NAME

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow  # starts Dask LocalClusters


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def photos(lfw10, yale):
    """Six real photos of three people (colour and grey), and one file that is not an image."""
    return sorted(lfw10.rglob("*.jpg"))[::25] + sorted(yale.rglob("*.gif"))[:2]


def test_dask_extract_equals_the_serial_run(tmp_path, client, photos):
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a jpeg")
    paths = [*photos, broken]
    serial = fc.extract(paths, tmp_path / "serial", progress=False)
    spread = fc.extract(paths, tmp_path / "dask", progress=False, client=client)
    run = spread.read_json("run")
    assert run["distributed"]["workers"] == 2 and run["distributed"]["failed_batches"] == []
    assert run["distributed"]["batches"] >= 2  # the work was spread, not sent as one task
    # The workers computed every stage: the driver found each result in the store and computed nothing.
    assert not {"detect", "embed", "morphable", "descriptors"} & set(run["counts"])
    assert sum(run["distributed"]["worker_seconds"].get(s, 0) for s in ("detect", "embed")) > 0
    # Dask's nanny pins MALLOC_TRIM_THRESHOLD_; each worker's plugin gave glibc back its large mmap threshold.
    tuned = client.run(lambda dask_worker: dask_worker.plugins[PLUGIN_NAME].malloc_tuned)
    assert list(tuned.values()) == [True, True]
    a, b = serial.table, spread.table
    assert a["face_id"].tolist() == b["face_id"].tolist() and (b["status"] == "unreadable").sum() == 1
    fa, fb = serial.features, spread.features
    assert fa.names == fb.names and len(fa) == len(paths) and fa.valid.sum() == len(photos)
    for name in fa.names:
        np.testing.assert_array_equal(fa[name], fb[name])


def test_a_client_that_is_not_dask_is_refused(tmp_path, photos):
    with pytest.raises(FaceclusterError, match="dask.distributed Client"):
        fc.extract(photos[:1], tmp_path / "s", progress=False, client=object())


def test_malloc_is_tuned_only_where_a_threshold_was_pinned():
    """In a child process: mallopt changes the whole process, and this one is pytest's."""
    code = ("from facecluster_widgets.pipeline.dask_runner import tune_malloc\n"
            "print(tune_malloc({'MALLOC_TRIM_THRESHOLD_': '65536'}), tune_malloc({}), "
            "tune_malloc({'MALLOC_TRIM_THRESHOLD_': '65536', 'MALLOC_MMAP_THRESHOLD_': '1'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    # glibc accepted the new threshold; with nothing pinned, or the user's own mmap threshold, nothing is changed
    assert out == ["True", "False", "False"]
