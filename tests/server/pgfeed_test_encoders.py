"""Encoders that only the test database's server may import (see conftest)."""


class FailingEncoder:
    """An encoder whose model call always raises, as a broken model would."""

    dimension = 384

    def encode(self, texts):
        raise RuntimeError("the model crashed")


class SlowEncoder:
    """The hashing encoder at a language model's pace (5 ms a text), so that
    workers overlap and can be killed mid-batch."""

    dimension = 384

    def encode(self, texts):
        import time

        from pgfeed.encoders.hashing import HashingEncoder

        time.sleep(0.005 * len(texts))
        return HashingEncoder().encode(texts)


class PoisonEncoder:
    """The hashing encoder, except that any batch holding the word 'poison' fails."""

    dimension = 384

    def encode(self, texts):
        from pgfeed.encoders.hashing import HashingEncoder

        if any("poison" in text for text in texts):
            raise ValueError("cannot embed a poisoned text")
        return HashingEncoder().encode(texts)


class SmallHashingEncoder:
    """The hashing encoder with 64 dimensions: another model, for model switches."""

    dimension = 64

    def encode(self, texts):
        from pgfeed.encoders.hashing import HashingEncoder

        encoder = HashingEncoder()
        encoder.dimension = self.dimension
        return encoder.encode(texts)
