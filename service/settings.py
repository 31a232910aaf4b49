"""The service's one configuration object, read from ``SIMLINK_*`` environment variables.

Everything configurable lives here and is passed down from the app or the CLI; no other module
reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SIMLINK_"


class Settings(BaseSettings):
    """Service settings; each field can be set as ``SIMLINK_<FIELD NAME>`` (e.g. ``SIMLINK_DTYPE=bf16``)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    host: str = Field("127.0.0.1", description="Address the server listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port the server listens on.")
    workers: int = Field(1, ge=1, description="Server processes; each loads its own model copy.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Access logs: uvicorn's text lines, or one JSON object per request (with its request id "
        "and stage times).",
    )

    model: str = Field(
        "embedded",
        description="Encoder: 'embedded' (all-MiniLM-L6-v2 shipped with the project), a local "
        "Hugging Face model directory, or a hub name.",
    )
    layer: int = Field(-1, description="Hidden layer whose token vectors are used; -1 is the last.")
    dtype: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="Encoder weights' precision. auto: bf16 where the CPU computes it natively (AVX512-BF16 or "
        "AMX), fp32 elsewhere; /info says which was chosen and why.",
    )
    torch_threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads per forward pass (default: the server divides the cores among its encoder "
        "workers; other commands use torch's default).",
    )
    max_tokens: int = Field(256, ge=2, description="Most tokens per text, [CLS]/[SEP] included.")
    skip_special_tokens: bool = Field(False, description="Default for leaving [CLS]/[SEP] out of the transport.")

    encoder_batch_tokens: int = Field(4096, ge=8, description="Token slots per forward pass.")
    encoder_workers: int = Field(
        2, ge=1, description="Encoder batches run at once, each in its own thread (needs packing to pay off)."
    )
    pack_texts: bool = Field(
        True,
        description="Pack several texts into each row of a forward pass instead of padding each one "
        "(used only if the model gives the same vectors that way; checked at start-up).",
    )
    batch_wait_ms: float = Field(
        2.0,
        ge=0,
        description="How long a similarity batch waits for more requests to join (the linker's: link_batch_wait_ms).",
    )
    batch_max_texts: int = Field(256, ge=1, description="Most texts gathered from queued requests into one batch.")

    max_pairs: int = Field(64, ge=1, description="Most pairs in one /similarity request.")
    max_candidates: int = Field(1000, ge=1, description="Most candidates in one /similarity/rank request.")
    max_alignment_pairs: int = Field(10, ge=1, description="Token pairs returned per alignment.")
    max_cosine_cells: int = Field(
        65_536, ge=1, description="Most cosine-matrix cells returned in one /similarity request (all pairs)."
    )
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest request body; larger gets 413.")

    queue_budget_tokens: int = Field(
        6_144,
        ge=1,
        description="Tokens of /similarity work admitted at once (queued and running); beyond it requests get "
        "429 with Retry-After. About the tokens the encoder gets through in a second, so that admitted "
        "requests wait about that long at most (bench/overload.py measures it).",
    )
    max_request_tokens: int = Field(
        32_768, ge=2, description="Most tokens one /similarity or /similarity/rank request may carry; more gets 413."
    )
    link_queue_budget_beams: int = Field(
        80, ge=1, description="Beams of /link-entity work admitted at once; beyond it requests get 429."
    )
    request_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Deadline of a POST request in seconds (a request may ask for less with the header "
        "x-request-timeout); past it the work is dropped and the answer is 504.",
    )
    shutdown_grace_s: float = Field(
        10.0,
        ge=0,
        description="On SIGTERM: seconds in-flight requests may take to finish before what is still queued "
        "gets 503 and the server exits.",
    )
    api_keys: SecretStr | None = Field(
        None,
        description="Comma-separated API keys; when set (here or in api_keys_file), every route but /health, "
        "/ready, the page and the docs needs 'Authorization: Bearer KEY'.",
    )
    api_keys_file: Path | None = Field(None, description="A file of API keys, one per line ('#' starts a comment).")
    protect_metrics: bool = Field(False, description="Whether /metrics needs an API key too (when keys are set).")

    link_model: str | None = Field(
        None,
        description="Seq2seq linker for /link-entity: a model directory written by 'simlink train' (or any "
        "HF seq2seq model). Unset: /link-entity answers 503.",
    )
    link_index: Path | None = Field(
        None, description="Index directory written by 'simlink build-index' with the linker's tokenizer."
    )
    link_dtype: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="The linker's weights' precision. auto: bf16 where the CPU computes it natively (AVX512-BF16 or "
        "AMX), fp32 elsewhere; /info says which was chosen and why.",
    )
    link_copy_weight: float = Field(
        1.0,
        ge=0.0,
        allow_inf_nan=False,
        description="Orders a beam's results by log-probability plus this much per character of the result that "
        "the text writes (Seq2Seq + prefix tree's copy preference); 0: by the model alone.",
    )
    link_several_max_gap: float | None = Field(
        None,
        ge=0.0,
        allow_inf_nan=False,
        description="With several: true, a further beam joins only if its log-probability is at most this much "
        "below the first result's; unset: any gap (the other rules of several still apply). "
        "'simlink evaluate link' fits it on the training split for candidates auto requests.",
    )
    link_disambiguate: bool = Field(
        True,
        description="Order entities that share a generated name by the similarity of their descriptions to the "
        "text (the encoder's default method); off: they come back tied, in id order.",
    )
    link_dense_candidates: int = Field(
        5,
        ge=0,
        le=100,
        description="With candidates: auto, how many names nearest the text's sentence vector join the names it "
        "writes, where the index holds name vectors ('simlink build-index --name-vectors'); 0: none.",
    )
    max_link_chars: int = Field(
        2000, ge=1, description="Longest text accepted by /link-entity and in a simlink link row (characters)."
    )
    max_link_input_tokens: int = Field(256, ge=8, description="Linker input tokens kept (longer inputs are cut).")
    max_beams: int = Field(
        20, ge=1, description="Largest num_beams a /link-entity request or simlink link row may ask for."
    )
    max_link_candidates: int = Field(
        1000, ge=1, description="Most candidate ids in one /link-entity request or simlink link row."
    )
    link_threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads of the linker's forward passes (default: every core this server process "
        "has; the linker runs one batch at a time).",
    )
    link_batch_max: int = Field(16, ge=1, description="Most /link-entity requests merged into one generate call.")
    link_batch_wait_ms: float = Field(
        0.0,
        ge=0,
        description="How long a /link-entity batch waits for more requests to join. No wait by default: while a "
        "batch runs (tens of milliseconds), the next requests queue and form the next batch anyway, so a wait "
        "would only delay a lone request.",
    )

    link_batch_refill_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="After a /link-entity batch of several requests, the next batch waits up to this share of "
        "that batch's time for as many requests to queue: under steady concurrency the answered clients come back "
        "together, and without a wait the first of them would run alone. A batch after a lone request never "
        "waits; 0: never.",
    )

    data_dir: Path | None = Field(None, description="Folder of evaluation data sets (e.g. ../shared/data).")

    @field_validator("link_model", "link_index", "data_dir", "api_keys", "api_keys_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """``SIMLINK_LINK_MODEL=`` (as docker compose passes an unset variable) means not set."""
        return None if isinstance(value, str) and not value.strip() else value

    def load_api_keys(self) -> tuple[str, ...]:
        """The API keys of ``api_keys`` and ``api_keys_file``; empty when neither is set.

        Raises ``ValueError`` naming the file when it cannot be read or holds no key.
        """
        keys = [key.strip() for key in (self.api_keys.get_secret_value() if self.api_keys else "").split(",")]
        if self.api_keys_file is not None:
            try:
                lines = self.api_keys_file.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as error:
                raise ValueError(f"cannot read the API keys file {self.api_keys_file}: {error}") from error
            from_file = [line.split("#", 1)[0].strip() for line in lines]
            if not any(from_file):
                raise ValueError(f"the API keys file {self.api_keys_file} holds no key")
            keys += from_file
        return tuple(dict.fromkeys(key for key in keys if key))
