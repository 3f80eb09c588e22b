"""Encoders that only the test database's server may import (see conftest)."""


class FailingEncoder:
    """An encoder whose model call always raises, as a broken model would."""

    dimension = 384

    def encode(self, texts):
        raise RuntimeError("the model crashed")
