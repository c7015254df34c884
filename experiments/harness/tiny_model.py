"""A tiny random Llama with a byte-level tokenizer, built entirely in code (no files, no hub)."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

EOS = "<|endoftext|>"


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE with no merges: 256 byte tokens plus one end-of-text token."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    vocab[EOS] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS, bos_token=EOS)


def tiny_llama(shape) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """``shape``: the model config's ``tiny`` node (``schema.TinyModelSchema``: seed and sizes)."""
    tokenizer = byte_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=int(shape.hidden_size),
        intermediate_size=int(shape.intermediate_size),
        num_hidden_layers=int(shape.num_hidden_layers),
        num_attention_heads=int(shape.num_attention_heads),
        num_key_value_heads=int(shape.num_key_value_heads),
        max_position_embeddings=2048,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(int(shape.seed))
    model = LlamaForCausalLM(config)
    # Non-trivial RMSNorm scales so that folding them (WINA's transform) is actually exercised.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    return model.eval(), tokenizer
