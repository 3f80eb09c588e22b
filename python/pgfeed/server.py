"""What the PL/Python functions call. Each receives GD, PL/Python's per-backend
dictionary, where loaded encoders and their statistics are kept."""

from __future__ import annotations

import os
import time
from collections.abc import MutableMapping, Sequence
from typing import Any

import numpy as np

from pgfeed import encoders, expressions

CHUNK = 256  # texts a model call: bounds memory whatever the statement size


def _threads(setting: str | None) -> int | None:
    """The setting pgfeed.encoder_threads as a thread count, at most the machine's cores: more threads than
    cores only make a backend's model calls fight each other (32 gave 67 threads in one backend)."""
    if not setting:
        return None
    if not setting.strip().isdigit() or int(setting) < 1:
        raise ValueError(f"pgfeed.encoder_threads is {setting!r}: set it to a number of threads (1 or more), "
                         "or reset it to let the model use every core")
    return min(int(setting), os.cpu_count() or 1)


def _encoder(gd: MutableMapping[str, Any], model: str, threads: str | None = None) -> dict:
    loaded = gd.setdefault("pgfeed.encoders", {})
    if model not in loaded:
        started = time.perf_counter()
        encoder = encoders.load(model, _threads(threads))
        loaded[model] = {"encoder": encoder, "calls": 0, "texts": 0, "load_seconds": time.perf_counter() - started}
    return loaded[model]


def encode(gd: MutableMapping[str, Any], texts: Sequence[str | None], model: str, threads: str | None = None) -> list[str]:
    """Vectors (as pgvector literals) for texts, CHUNK texts per model call. `threads` (the setting
    pgfeed.encoder_threads) caps the model's CPU threads when this backend first loads it."""
    for position, text in enumerate(texts, 1):
        if text is None or not text.strip():
            raise ValueError(f"text {position} is {'NULL' if text is None else 'empty'}: only non-empty text can be embedded")
    entry = _encoder(gd, model, threads)
    literals = []
    for start in range(0, len(texts), CHUNK):
        chunk = texts[start:start + CHUNK]
        vectors = np.asarray(entry["encoder"].encode(chunk), dtype=np.float32)
        # pgvector stores float4, which 9 significant digits give back exactly; one
        # format a row is the cheapest way to its text input (0.08 ms for 384 values).
        literal = "[" + ",".join(["%.9g"] * vectors.shape[1]) + "]"
        literals.extend(literal % tuple(vector) for vector in vectors.tolist())
        entry["calls"] += 1
        entry["texts"] += len(chunk)
    return literals


def dimensions(model: str) -> int:
    return encoders.dimensions(model)


def packaged(model: str) -> bool:
    return encoders.packaged(model)


def expression_problem(expression: str) -> str | None:
    return expressions.problem(expression)


def encoder_stats(gd: MutableMapping[str, Any]) -> list[tuple]:
    return [
        (model, entry["calls"], entry["texts"], entry["load_seconds"])
        for model, entry in gd.get("pgfeed.encoders", {}).items()
    ]
