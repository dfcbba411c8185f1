"""Micro-batching of query embeddings: texts from concurrent requests share one encode call.

A sentence-transformers forward pass over 16 short texts costs little more than over one, so under
load gathering the texts of concurrent queries raises throughput without adding more than the
gathering window to any single query.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import numpy as np

from graphmem_core.embeddings import Embedder
from graphmem_core.settings import DEFAULT_EMBEDDING_MODEL

logger = logging.getLogger(__name__)

# How long the first text of a batch waits for others. One query text takes several milliseconds to
# encode on a CPU, so two milliseconds adds little to a lone query and gathers the texts of requests
# that arrive together.
BATCH_WINDOW_SECONDS = 0.002


class _EncodeRequest:
    """Texts of one `encode` call and the future that receives their vectors."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.future: Future[np.ndarray] = Future()


class BatchingEmbedder(Embedder):
    """An `Embedder` whose `encode` calls from concurrent threads are gathered into shared encode calls.

    Each call blocks its own thread until its vectors are ready, so callers see the plain `Embedder`
    behaviour. A call with `max_texts` texts or more is encoded alone, without waiting.
    """

    def __init__(
        self,
        model: str = DEFAULT_EMBEDDING_MODEL,
        device: str | None = None,
        batch_size: int = 64,
        *,
        window_seconds: float = BATCH_WINDOW_SECONDS,
        max_texts: int | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(model, device, batch_size)
        self.window_seconds = window_seconds
        self.max_texts = max_texts if max_texts is not None else batch_size
        self._on_batch = on_batch
        self._requests: queue.Queue[_EncodeRequest | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()
        self._closed = False

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Return one unit-norm float32 row per text, encoded together with the texts of concurrent calls."""
        if not texts or show_progress or len(texts) >= self.max_texts or threading.current_thread() is self._worker:
            return super().encode(texts, show_progress)

        request = _EncodeRequest(list(texts))
        self._start_worker()
        self._requests.put(request)
        return request.future.result()

    def close(self) -> None:
        """Stop the batching thread after the requests already queued are encoded."""
        with self._worker_lock:
            self._closed = True
            worker = self._worker
        if worker is not None:
            self._requests.put(None)
            worker.join()

    def _start_worker(self) -> None:
        with self._worker_lock:
            if self._closed:
                raise RuntimeError("the batching embedder is closed: create a new one")
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="graphmem-embedding-batcher", daemon=True)
                self._worker.start()

    def _run(self) -> None:
        """Encode queued requests in batches until `close` queues the stop marker."""
        carried: _EncodeRequest | None = None
        while True:
            first = carried if carried is not None else self._requests.get()
            carried = None
            if first is None:
                return

            batch = [first]
            count = len(first.texts)
            stopping = False
            deadline = time.monotonic() + self.window_seconds
            while count < self.max_texts:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._requests.get(timeout=remaining)
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                if count + len(item.texts) > self.max_texts:
                    # Too large for this batch, so it opens the next one.
                    carried = item
                    break
                batch.append(item)
                count += len(item.texts)

            self._encode_batch(batch, count)
            if stopping:
                return

    def _encode_batch(self, batch: list[_EncodeRequest], count: int) -> None:
        """Encode the texts of `batch` in one call and hand each request its rows, or the error to every request."""
        texts = [text for request in batch for text in request.texts]
        try:
            vectors = super().encode(texts)
        except Exception as error:  # noqa: BLE001 - the error is handed to each caller, which re-raises it
            logger.warning("encoding a batch of %d query texts failed: %s", count, error)
            for request in batch:
                request.future.set_exception(error)
            return

        if self._on_batch is not None:
            self._on_batch(count)
        offset = 0
        for request in batch:
            request.future.set_result(vectors[offset : offset + len(request.texts)])
            offset += len(request.texts)
