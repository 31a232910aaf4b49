"""Shared fixtures: the real embedded encoder (loaded once) and the shared evaluation data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from models.loader import load_encoder_model
from models.similarity.encoder import TokenEncoder
from support.data import data_dir as shared_data_dir


@pytest.fixture(scope="session")
def data_dir() -> Path:
    directory = shared_data_dir()
    if not (directory / "SOURCES.md").is_file():
        pytest.skip(f"shared evaluation data not found at {directory} (set SIMLINK_DATA_DIR)")
    return directory


@pytest.fixture(scope="session")
def encoder() -> TokenEncoder:
    """The embedded all-MiniLM-L6-v2 in fp32, as the service loads it by default."""
    return TokenEncoder(load_encoder_model("embedded", "fp32"))


TINY_ENTITIES = [
    {
        "id": "city:paris",
        "name": "Paris",
        "aliases": ["City of Light"],
        "description": "Paris is the capital of France.",
    },
    {"id": "person:paris", "name": "Paris", "aliases": ["Alexander"], "description": "Paris is a prince of Troy."},
    {"id": "country:france", "name": "France", "aliases": ["French Republic"], "description": "France is in Europe."},
    {"id": "country:japan", "name": "Japan", "aliases": ["Nippon"], "description": "Japan is an island country."},
    {"id": "person:marie_curie", "name": "Marie Curie", "aliases": ["Maria Sklodowska"], "description": "A physicist."},
    {"id": "language:python", "name": "Python", "aliases": [], "description": "Python is a programming language."},
    {"id": "animal:python", "name": "Python", "aliases": [], "description": "A python is a large snake."},
]
TINY_FACTS = [
    "France\tcapital\tParis",
    "France\tcurrency\tEuro",
    "Japan\tcapital\tTokyo",
    "Japan ||| currency ||| Yen",
    "Marie Curie\tborn in\tWarsaw",
    "Marie Curie\tknown for\tRadioactivity",
    "Marie Curie\tknown for\tPolonium",
]


@dataclass(frozen=True)
class TinyLinker:
    """A knowledge base, a seq2seq model fine-tuned on it for a few seconds, and its index."""

    entities: Path
    facts: Path
    model_dir: Path
    index_dir: Path


def write_tiny_kb(directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    entities, facts = directory / "entities.jsonl", directory / "facts.tsv"
    entities.write_text("".join(json.dumps(entity) + "\n" for entity in TINY_ENTITIES))
    facts.write_text("".join(fact + "\n" for fact in TINY_FACTS))
    return entities, facts


@pytest.fixture(scope="session")
def tiny_linker(tmp_path_factory: pytest.TempPathFactory) -> TinyLinker:
    """Trained in the test session itself (about ten seconds on two cores)."""
    from index.builder import KbSources, build_index
    from models.linking.trainer import TrainConfig, load_for_training, train
    from models.linking.training_data import examples_from_files

    root = tmp_path_factory.mktemp("tiny-linker")
    entities_path, facts_path = write_tiny_kb(root / "kb")
    examples = examples_from_files(entities_path, facts_path, None)
    # 6 decoder layers: in its few dozen steps the default 2 learn too little for the engine tests' names
    model = load_for_training(None, root / "model", resume=False, seed=0, decoder_layers=6)
    config = TrainConfig(epochs=6, batch_size=8, learning_rate=3e-4, warmup_steps=3, dev_fraction=0.0)
    train(model, examples, root / "model", config)
    build_index(KbSources(entities_path, facts_path), root / "index", model.tokens)
    return TinyLinker(entities_path, facts_path, root / "model", root / "index")


def save_tiny_roberta(directory: Path) -> Path:
    """A tiny randomly initialised RoBERTa with the embedded BERT tokenizer, saved to ``directory``:
    an encoder whose positions start after the padding index, so packed rows (positions from 0)
    give it other vectors than padded batches."""
    from transformers import AutoTokenizer, RobertaConfig, RobertaModel

    from models.loader import embedded_model_dir

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=300,
        pad_token_id=tokenizer.pad_token_id,
    )
    RobertaModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def save_tiny_seq2seq(kind: str, directory: Path, init_range: float = 0.02, tied_output: bool = True) -> Path:
    """A tiny randomly initialised ``bert2bert``, ``t5`` or ``bart`` saved with the embedded BERT
    tokenizer: enough to check that any Hugging Face seq2seq directory loads and decodes under the
    trie (no download needed). A wider ``init_range`` gives peakier next-token distributions;
    ``tied_output=False`` gives the bert2bert decoder an output layer of its own."""
    from transformers import (
        AutoTokenizer,
        BartConfig,
        BartForConditionalGeneration,
        BertConfig,
        EncoderDecoderConfig,
        EncoderDecoderModel,
        T5Config,
        T5ForConditionalGeneration,
    )

    from models.loader import embedded_model_dir

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    special = {"eos_token_id": tokenizer.sep_token_id, "pad_token_id": tokenizer.pad_token_id}
    small = {"vocab_size": len(tokenizer), "initializer_range": init_range}
    if kind == "bert2bert":
        layers = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64, "num_hidden_layers": 2}
        config = EncoderDecoderConfig.from_encoder_decoder_configs(
            BertConfig(**small, **layers),
            BertConfig(**small, **layers, is_decoder=True, add_cross_attention=True, tie_word_embeddings=tied_output),
        )
        config.decoder_start_token_id = tokenizer.cls_token_id
        config.update(special)
        model = EncoderDecoderModel(config=config)
        model.generation_config.update(decoder_start_token_id=tokenizer.cls_token_id, **special)
    elif kind == "t5":
        config = T5Config(
            **small, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=2,
            decoder_start_token_id=tokenizer.pad_token_id, initializer_factor=init_range / 0.02, **special,
        )  # fmt: skip
        model = T5ForConditionalGeneration(config)
    else:
        config = BartConfig(
            **small, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
            decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, bos_token_id=tokenizer.cls_token_id,
            decoder_start_token_id=tokenizer.sep_token_id, init_std=init_range, **special,
        )  # fmt: skip
        model = BartForConditionalGeneration(config)
        model.generation_config.forced_bos_token_id = tokenizer.cls_token_id  # as BART checkpoints do
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


CHINESE_ENTITIES = [
    {
        "id": "person:liu_xiaohua_professor",
        "name": "刘晓华（广东工业大学教授）",
        "aliases": ["刘晓华"],
        "description": "刘晓华是广东工业大学的教授。",
    },
    {
        "id": "person:liu_xiaohua_actor",
        "name": "刘晓华（演员）",
        "aliases": ["刘晓华"],
        "description": "刘晓华是演员。",
    },
    {"id": "city:beijing", "name": "北京", "aliases": ["北京市"], "description": "北京是中国的首都。"},
    {"id": "city:shanghai", "name": "上海", "aliases": ["上海市"], "description": "上海是中国的城市。"},
    {"id": "river:yangtze", "name": "长江", "aliases": ["扬子江"], "description": "长江是中国最长的河流。"},
    {"id": "game:longjing", "name": "龙晶（游戏）", "aliases": ["龙晶"], "description": "龙晶是一款游戏。"},
]
CHINESE_FACTS = [
    "北京 ||| 所属国家 ||| 中国",
    "上海 ||| 所属国家 ||| 中国",
    "长江 ||| 长度 ||| 6300公里",
    "刘晓华（广东工业大学教授） ||| 职业 ||| 教授",
    "刘晓华（演员） ||| 代表作品 ||| 情满珠江",
    "龙晶（游戏） ||| 繁体 ||| 龍晶",
]


CHINESE_VOCAB = "的是中国北京上海"
"""The tiny Chinese BERT's own characters; the trainer adds the rest of the Chinese KB's."""


def write_chinese_kb(directory: Path) -> tuple[Path, Path]:
    """The tiny Chinese knowledge base: names with full-width brackets, two people of one name."""
    directory.mkdir(parents=True, exist_ok=True)
    entities, facts = directory / "entities.jsonl", directory / "facts.txt"
    entities.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in CHINESE_ENTITIES), encoding="utf-8")
    facts.write_text("".join(fact + "\n" for fact in CHINESE_FACTS), encoding="utf-8")
    return entities, facts


def save_tiny_chinese_bert(directory: Path, characters: str = CHINESE_VOCAB) -> Path:
    """A tiny randomly initialised BERT encoder (hidden 32, 2 layers, 2 heads) whose vocabulary is the
    special tokens and ``characters``, saved as Chinese BERT releases are (``vocab.txt``, ``config.json``,
    weights): a local encoder directory a user could bring, built without any download."""
    from transformers import BertConfig, BertModel

    directory.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(characters)]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def chinese_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory of :func:`save_tiny_chinese_bert` (read-only: copy it to change it)."""
    return save_tiny_chinese_bert(tmp_path_factory.mktemp("chinese-bert"))
