"""The token encoder with the real embedded model."""

from __future__ import annotations

import numpy as np
import pytest

from models.encoder import TextTooLongError, TokenEncoder
from models.loader import load_encoder_model
from models.similarity import score_pair

SENTENCES = [
    "A man is playing a guitar.",
    "The quick brown fox jumps over the lazy dog near the river bank this morning.",
    "Short one.",
    "Two dogs are running through a field of tall grass.",
]


def test_special_tokens_can_be_left_out(encoder: TokenEncoder) -> None:
    full = encoder.encode(["A man is playing a guitar."])[0]
    content = full.without_special_tokens()
    assert full.tokens[0] == "[CLS]" and full.tokens[-1] == "[SEP]"
    assert len(content) == len(full) - 2
    assert "[CLS]" not in content.tokens and "[SEP]" not in content.tokens
    np.testing.assert_array_equal(content.vectors, full.vectors[1:-1])


def test_batched_encoding_equals_one_text_at_a_time(encoder: TokenEncoder) -> None:
    together = encoder.encode(SENTENCES)
    for text, batched in zip(SENTENCES, together, strict=True):
        alone = encoder.encode([text])[0]
        assert alone.tokens == batched.tokens
        np.testing.assert_allclose(alone.vectors, batched.vectors, atol=2e-4)


def test_token_offsets_point_into_the_text(encoder: TokenEncoder) -> None:
    text = "Paraphrases share meaning."
    encoded = encoder.encode([text])[0]
    for token, (start, end), special in zip(encoded.tokens, encoded.offsets, encoded.special, strict=True):
        if not special:
            assert text[start:end].lower() == token.removeprefix("##")


def test_text_over_the_limit_is_refused_or_cut(encoder: TokenEncoder) -> None:
    short = TokenEncoder(encoder.loaded, max_tokens=8)
    long_text = "one two three four five six seven eight nine ten"
    with pytest.raises(TextTooLongError) as refused:
        short.tokenize(["fine", long_text])
    assert refused.value.index == 1 and refused.value.limit == 8
    fine, cut = short.tokenize(["fine", long_text], truncate=True)
    assert not fine.truncated and cut.truncated
    assert len(cut) == 8 and cut.tokens[-1] == "[SEP]"


def test_layer_choice_changes_the_vectors(encoder: TokenEncoder) -> None:
    first_layer = TokenEncoder(encoder.loaded, layer=1)
    a = encoder.encode(["A man is playing a guitar."])[0].vectors
    b = first_layer.encode(["A man is playing a guitar."])[0].vectors
    assert a.shape == b.shape and not np.allclose(a, b, atol=1e-3)
    with pytest.raises(ValueError, match="out of range"):
        TokenEncoder(encoder.loaded, layer=7)


def test_bf16_agrees_with_fp32(encoder: TokenEncoder) -> None:
    """bf16 keeps 8 significand bits (relative error ~0.4 % per weight); on STS-B sentences the
    token vectors stay at cosine >= 0.9998 from fp32 and similarities within 0.004, so the
    asserted bounds (0.999 and 0.01) leave headroom while catching any real precision bug."""
    bf16 = TokenEncoder(load_encoder_model("embedded", "bf16"))
    texts = [*SENTENCES, "A person plays the guitar.", "Someone is slicing an onion."]
    exact, approx = encoder.encode(texts), bf16.encode(texts)
    for x, y in zip(exact, approx, strict=True):
        cosine = (
            np.sum(x.vectors * y.vectors, 1) / np.linalg.norm(x.vectors, axis=1) / np.linalg.norm(y.vectors, axis=1)
        )
        assert cosine.min() >= 0.999
    for method in ("wrd", "wmd", "greedy"):
        for k in range(len(texts) - 1):
            reference = score_pair(exact[k], exact[k + 1], method).similarity
            assert abs(score_pair(approx[k], approx[k + 1], method).similarity - reference) <= 0.01
