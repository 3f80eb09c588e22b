"""sentence-transformers models, loaded from local files only."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# Nothing may reach a model hub from inside the server.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def read_dimension(path: str) -> int:
    """Output dimension from the model's module configs: the last Dense layer, else pooling."""
    root = Path(path)
    dimension = None
    for module in json.loads((root / "modules.json").read_text()):
        config = root / module.get("path", "") / "config.json"
        if module["type"].endswith("Pooling"):
            dimension = json.loads(config.read_text())["word_embedding_dimension"]
        elif module["type"].endswith("Dense"):
            dimension = json.loads(config.read_text())["out_features"]
    if dimension is None:
        raise ValueError(f"cannot tell the output dimension of the model in {path}: no Pooling module")
    return int(dimension)


class SentenceTransformerEncoder:
    batch_size = 64

    def __init__(self, path: str, threads: int | None = None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)  # for the whole backend: it runs one statement at a time

        self.model = SentenceTransformer(path, device="cpu")
        self.dimension = self.model.get_embedding_dimension()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        # Texts longer than the model's window (max_seq_length word pieces)
        # are embedded from their beginning, as sentence-transformers does.
        return self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
