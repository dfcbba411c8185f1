"""Micro-batching of query embeddings: texts from concurrent requests share one encode call.

One dedicated thread runs every batched encode call. While it encodes, new texts queue, and its next
forward pass takes all of them, so under load the batches grow with the number of waiting queries and
a lone query waits for nothing. On a 2-core CPU a forward pass over 16 short questions took about 7
times as long as over one (benchmarks/query.py), so batching raises throughput about 2 times.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import numpy as np

from graphmem_core.embeddings import Embedder
from graphmem_core.errors import ConfigurationError
from graphmem_core.settings import DEFAULT_EMBEDDING_MODEL

logger = logging.getLogger(__name__)

# How long the first text of a batch waits for others after taking every text already queued. The
# texts that arrive during a forward pass are gathered by the next one anyway, so no wait is needed.
BATCH_WINDOW_SECONDS = 0.0


class _EncodeRequest:
    """Texts of one `encode` call and the future that receives their vectors."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.future: Future[np.ndarray] = Future()


class BatchingEmbedder(Embedder):
    """An `Embedder` whose `encode` calls from concurrent threads are gathered into shared encode calls.

    Each call blocks its own thread until its vectors are ready, so callers see the plain `Embedder`
    behaviour. A call with `max_texts` texts or more is encoded alone in the calling thread, without
    waiting. `torch_threads` sets torch's intra-op threads in the batching thread; 0 keeps torch's default.
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
        torch_threads: int = 0,
    ) -> None:
        super().__init__(model, device, batch_size)
        if torch_threads < 0:
            raise ConfigurationError(f"torch_threads={torch_threads} is invalid: set GRAPHMEM_TORCH_THREADS to 0 (torch's default) or more")
        self.window_seconds = window_seconds
        self.torch_threads = torch_threads
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
        return self.submit(texts).result()

    def submit(self, texts: Sequence[str]) -> Future[np.ndarray]:
        """Queue `texts` for the batching thread and return the future of their rows, without blocking.

        An event loop can await it with `asyncio.wrap_future`, so a query waiting for its vectors holds
        no worker thread.
        """
        request = _EncodeRequest(list(texts))
        if not request.texts:
            request.future.set_result(np.zeros((0, self.dimension), dtype=np.float32))
            return request.future
        self._start_worker()
        self._requests.put(request)
        return request.future

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
        if self.torch_threads:
            import torch

            # torch 2.15 with its OpenMP backend keeps this count per thread (other threads still report
            # their own), so it applies to this thread, which runs every batched forward pass.
            torch.set_num_threads(self.torch_threads)
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
                try:
                    # Every request already queued joins the batch; then wait out what is left of the window.
                    item = self._requests.get_nowait() if remaining <= 0 else self._requests.get(timeout=remaining)
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
