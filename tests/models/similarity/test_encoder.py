"""The token encoder with the real embedded model."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from models.loader import load_encoder_model
from models.similarity.encoder import PACKED_ROW_LENGTH, TextTooLongError, TokenEncoder
from models.similarity.scoring import score_pair
from tests.conftest import save_tiny_roberta

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


LONG_TEXT = " ".join(f"word{i}" for i in range(80))  # about 160 tokens: wider than a packed row


def test_packed_rows_give_the_vectors_of_padded_batches(encoder: TokenEncoder) -> None:
    texts = [*SENTENCES, LONG_TEXT, *SENTENCES[::-1]]
    packed = TokenEncoder(encoder.loaded, batch_tokens=256)  # several forward passes
    padded = TokenEncoder(encoder.loaded, pack_texts=False)
    assert packed.packing and not padded.packing
    assert max(len(t) for t in packed.tokenize(texts)) > PACKED_ROW_LENGTH
    for a, b in zip(packed.encode(texts), padded.encode(texts), strict=True):
        assert a.tokens == b.tokens
        np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-4)


def test_embedding_from_two_threads_at_once_matches_one_at_a_time(encoder: TokenEncoder) -> None:
    from concurrent.futures import ThreadPoolExecutor

    batches = [SENTENCES, [LONG_TEXT, *SENTENCES[:2]], SENTENCES[::-1], [SENTENCES[2]] * 7] * 3
    with ThreadPoolExecutor(max_workers=1) as one:  # a new thread as below: the same torch thread count
        expected = list(one.map(encoder.encode, batches))
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(encoder.encode, batches))
    for want, got in zip(expected, results, strict=True):
        for a, b in zip(want, got, strict=True):
            np.testing.assert_array_equal(a.vectors, b.vectors)


def test_a_model_whose_positions_differ_when_packed_gets_padded_batches(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """RoBERTa numbers positions from padding_idx + 1, so packed rows (positions from 0) give other
    vectors: the start-up check must notice and fall back to padding."""
    save_tiny_roberta(tmp_path)
    with caplog.at_level(logging.WARNING, logger="models.similarity.encoder"):
        roberta = TokenEncoder(load_encoder_model(str(tmp_path)))
    assert not roberta.packing
    assert "packed and padded token vectors differ" in caplog.text
    together = roberta.encode(SENTENCES)
    for text, batched in zip(SENTENCES, together, strict=True):
        np.testing.assert_allclose(roberta.encode([text])[0].vectors, batched.vectors, atol=1e-5)


def test_a_model_without_position_ids_cannot_be_traced_for_packing() -> None:
    import torch

    from models.similarity.packed_model import PackedModel, PackingUnsupportedError
    from models.similarity.packing import pack

    class NoPositions(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(10, 4)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.embed(input_ids)

    with pytest.raises(PackingUnsupportedError):
        PackedModel.trace(NoPositions(), -1, pack([[1, 2], [3]], 8, pad_id=0))
