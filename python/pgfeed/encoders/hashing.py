"""A deterministic, dependency-light encoder: a sum of pseudo-random word vectors.

Each word maps to a fixed dense random vector (seeded by the word's hash), so
texts that share words get similar vectors, which is enough to test ranking,
and it loads instantly; it is no substitute for a language model. Dense, as a
model's vectors are: an HNSW graph over sparse vectors is poorly connected.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

_WORD = re.compile(r"\w+")


@lru_cache(maxsize=65536)
def _word_vector(word: str, dimension: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng(seed).standard_normal(dimension).astype(np.float32)


class HashingEncoder:
    dimension = 384

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()) or [text]:
                out[row] += _word_vector(word, self.dimension)
            norm = np.linalg.norm(out[row])
            if norm == 0:  # words that cancel out: fall back to the whole text
                out[row] = _word_vector(text, self.dimension)
                norm = np.linalg.norm(out[row])
            out[row] /= norm
        return out
