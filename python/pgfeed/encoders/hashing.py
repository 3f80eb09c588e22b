"""A deterministic, dependency-light encoder: signed feature hashing of words.

Texts that share words get similar vectors, which is enough to test ranking,
and it loads instantly; it is no substitute for a language model.
"""

from __future__ import annotations

import hashlib
import re
from typing import Sequence

import numpy as np

_WORD = re.compile(r"\w+")


class HashingEncoder:
    dimension = 384

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()) or [text]:
                digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[row, digest % self.dimension] += 1.0 if (digest >> 32) & 1 else -1.0
            norm = np.linalg.norm(out[row])
            if norm == 0:  # words that cancel out: fall back to the whole text
                digest = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
                out[row, digest % self.dimension] = norm = 1.0
            out[row] /= norm
        return out
