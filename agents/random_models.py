"""Random-weight causal LMs built from a config, with no download: the tiny
Llama and byte-level chat tokenizer of the fast tests, and Llama-shaped
models of real checkpoints (SmolLM2-135M, Llama 1B and 8B) whose throughput
on a GPU is honest even where no pretrained weights can be loaded. Their text
is noise; they exist for mechanics and speed, never for verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2

# Shapes of real checkpoints (from their config.json); vocab sizes included,
# since the LM head is a real part of each decode step's cost.
ARCHS: dict[str, dict[str, int]] = {
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=49152,
    ),
    "smollm2-135m": dict(
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        vocab_size=49152,
    ),
    "llama-1b": dict(
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
    ),
    "llama-8b": dict(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
    ),
}


def byte_tokenizer():
    """A byte-level BPE tokenizer with no merges (one token per byte), ChatML
    specials and template, left padding: any text, no vocabulary file."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    specials = ["<pad>", "<|im_start|>", "<|im_end|>"]
    vocab = {tok: i for i, tok in enumerate(specials + alphabet)}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token="<pad>",
        eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tok.chat_template = CHATML
    tok.padding_side = "left"
    return tok


def llama(
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    **shape: Any,
):
    """A LlamaForCausalLM with random weights (torch seed `seed`), in eval mode.
    `shape`: LlamaConfig fields (hidden_size, num_hidden_layers, ...)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        pad_token_id=PAD_ID,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        tie_word_embeddings=False,
        **shape,
    )
    torch.manual_seed(seed)
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(dtype).eval()
    model.generation_config.eos_token_id = EOS_ID
    return model


def tiny_llama(vocab_size: int = 264, layers: int = 4, seed: int = 0):
    """4 layers, hidden 64, a vocabulary that fits byte_tokenizer: milliseconds on CPU.
    Weights drawn wider than usual (0.2) so that steering visibly moves its outputs."""
    return llama(
        seed=seed,
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        initializer_range=0.2,
    )


def save_tiny(folder: Path) -> Path:
    """The tiny Llama and the byte tokenizer as a local HF folder."""
    tiny_llama().save_pretrained(folder, safe_serialization=True)
    byte_tokenizer().save_pretrained(folder)
    return folder


def real_architecture(arch: str, *, device: str = "cpu", dtype: torch.dtype = torch.bfloat16):
    """A random-weight model of ARCHS[arch]'s shape (Llama 3 rope, 4k positions)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    return llama(
        device=device,
        dtype=dtype,
        max_position_embeddings=4096,
        rope_theta=500000.0,
        **ARCHS[arch],
    )
