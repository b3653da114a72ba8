"""The pipeline: ``extract()`` runs every stage of the method over a folder of photos into the store.

``stages`` (one runner per stage), ``batching`` (one image through the stages; the queue that batches the
embedding network), ``extract`` (the serial driver and the tables), ``dask_runner`` (the same over a Dask cluster).
"""

from .extract import extract
from .stages import DEFAULT_DETECTOR, PipelineConfig

__all__ = ["DEFAULT_DETECTOR", "PipelineConfig", "extract"]
