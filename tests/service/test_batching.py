"""Micro-batching of query embeddings with the real model: shared encode calls, same vectors, errors reach callers."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from graphmem_core.errors import ConfigurationError
from graphmem_service.batching import BatchingEmbedder

QUESTIONS = [
    "Who founded the company?",
    "What is the guest working on now?",
    "How did the host get into programming?",
    "Which instruments does the musician play?",
    "What changed when the product launched?",
    "Where did the guest grow up?",
    "What advice is given to young engineers?",
    "Which research lab is mentioned?",
]

# Long enough that every thread's request arrives within one window, even on a busy machine.
TEST_WINDOW_SECONDS = 1.0

MAX_TEXTS = 64

# Vectors of one text encoded alone or padded in a batch agree to about 1e-6 on a CPU.
VECTOR_TOLERANCE = 1e-4


class Recorder:
    """Sizes of the batches a `BatchingEmbedder` encoded, in order."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def record(self, size: int) -> None:
        self.sizes.append(size)


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def batching(recorder: Recorder):
    embedder = BatchingEmbedder(window_seconds=TEST_WINDOW_SECONDS, max_texts=MAX_TEXTS, on_batch=recorder.record)
    embedder.model
    yield embedder
    embedder.close()


def test_concurrent_texts_share_batches(batching: BatchingEmbedder, recorder: Recorder, embedder):
    recorder.sizes.clear()

    with ThreadPoolExecutor(max_workers=len(QUESTIONS)) as pool:
        vectors = list(pool.map(lambda text: batching.encode([text]), QUESTIONS))

    assert sum(recorder.sizes) == len(QUESTIONS)
    assert len(recorder.sizes) < len(QUESTIONS), f"texts were encoded in batches of {recorder.sizes}"
    expected = embedder.encode(QUESTIONS)
    for row, vector in enumerate(vectors):
        assert vector.shape == (1, expected.shape[1])
        np.testing.assert_allclose(vector[0], expected[row], atol=VECTOR_TOLERANCE)


def test_large_request_encoded_alone(batching: BatchingEmbedder, recorder: Recorder):
    recorder.sizes.clear()
    texts = [f"{question} ({copy})" for copy in range(MAX_TEXTS // len(QUESTIONS)) for question in QUESTIONS]

    vectors = batching.encode(texts)

    assert vectors.shape[0] == MAX_TEXTS
    assert recorder.sizes == [], "a request of max_texts or more skips the batching thread"


def test_encode_error_reaches_caller(batching: BatchingEmbedder):
    with pytest.raises(ValueError, match="NoneType"):
        batching.encode([None])  # type: ignore[list-item]

    vector = batching.encode([QUESTIONS[0]])

    assert vector.shape[0] == 1


def test_closed_embedder_rejects_encode():
    closed = BatchingEmbedder()
    closed.close()

    with pytest.raises(RuntimeError, match="closed"):
        closed.encode(["text"])


def test_waiting_texts_share_next_batch(embedder):
    sizes: list[int] = []
    threads: list[int] = []

    def record(size: int) -> None:
        import torch

        sizes.append(size)
        threads.append(torch.get_num_threads())

    batching = BatchingEmbedder(window_seconds=0.0, max_texts=MAX_TEXTS, on_batch=record, torch_threads=1)
    batching.model
    try:
        # The long request keeps the batching thread busy while the others queue behind it.
        first = batching.submit([" ".join(QUESTIONS * 4)])
        waiting = [batching.submit([text]) for text in QUESTIONS]
        vectors = [future.result() for future in waiting]
        first.result()
    finally:
        batching.close()

    assert sum(sizes) == len(QUESTIONS) + 1
    assert len(sizes) <= 3, f"queued texts were encoded in batches of {sizes}"
    assert set(threads) == {1}, "the batching thread runs torch with the configured thread count"
    expected = embedder.encode(QUESTIONS)
    for row, vector in enumerate(vectors):
        np.testing.assert_allclose(vector[0], expected[row], atol=VECTOR_TOLERANCE)


def test_negative_torch_threads_rejected():
    with pytest.raises(ConfigurationError, match="GRAPHMEM_TORCH_THREADS"):
        BatchingEmbedder(torch_threads=-1)
