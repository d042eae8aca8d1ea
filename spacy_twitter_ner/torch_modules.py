"""The PyTorch modules of the tagger. Each is wrapped by thinc's ``PyTorchWrapper`` in
``architectures.py``; nothing here knows about spaCy.

Tokens arrive flat (all tokens of a batch of tweets one after the other, thinc's ``Ragged``
layout), so no computation is spent on padding except inside the BiLSTM, which is given packed
sequences.
"""
import ctypes
import ctypes.util
import os
import sys
from typing import Callable, List, Optional, Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence


def _one_thread_after_fork() -> None:
    """Workers forked by ``nlp.pipe(n_process=...)`` hang on their first torch operation when
    the parent's OpenMP pool was already started; one intra-op thread per worker avoids it and
    is what a process pool wants anyway."""
    torch.set_num_threads(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_one_thread_after_fork)

# glibc raises its mmap threshold each time a large block is freed; after that, the tensors of
# varying shape that training allocates (ragged batches) come from the heap and fragment it, and
# freed memory is not given back: measured here, `spacy train` grew by ~6 MB per step with 2
# threads and passed 7 GB in 15 minutes. Trimming the heap every few updates keeps RSS flat
# (~0.6 GB) at no measurable cost; pinning the threshold instead made training 10-60% slower.
def _load_libc_trim() -> Optional[Callable[[int], int]]:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_MALLOC_TRIM = _load_libc_trim()


def trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc only; a no-op elsewhere)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class TokenFeaturizer(nn.Module):
    """Per-token input vector: word embedding (normalised form), a character CNN, a casing/shape
    embedding and dense extra features (gazetteer flags), concatenated and, when their total
    differs from ``width``, projected to ``width``."""

    def __init__(
        self,
        *,
        width: int,
        n_words: int,
        word_dim: int,
        n_chars: int,
        char_dim: int,
        char_filters: int,
        char_window: int,
        n_shapes: int,
        shape_dim: int,
        n_extra: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.word_dim = word_dim
        self.word_embed = nn.Embedding(n_words, word_dim, padding_idx=0) if word_dim else None
        self.char_embed = nn.Embedding(n_chars, char_dim, padding_idx=0) if char_filters else None
        self.char_conv = (
            nn.Conv1d(char_dim, char_filters, kernel_size=char_window, padding=char_window // 2)
            if char_filters
            else None
        )
        self.shape_embed = nn.Embedding(n_shapes, shape_dim) if shape_dim else None
        self.n_extra = n_extra
        total = word_dim + char_filters + shape_dim + n_extra
        if total == 0:
            raise ValueError("TokenFeaturizer: every feature is switched off (all sizes are 0)")
        self.project = nn.Linear(total, width) if total != width else None
        self.dropout = nn.Dropout(dropout)

    def resize_words(self, n_words: int) -> None:
        """The word vocabulary is only known after reading the training data (initialize)."""
        if self.word_embed is not None and self.word_embed.num_embeddings != n_words:
            self.word_embed = nn.Embedding(n_words, self.word_dim, padding_idx=0).to(
                self.word_embed.weight.device
            )

    def forward(
        self,
        word_ids: torch.Tensor,
        char_ids: torch.Tensor,
        char_index: torch.Tensor,
        shape_ids: torch.Tensor,
        extra: torch.Tensor,
    ) -> torch.Tensor:
        """``char_ids`` holds the characters of each distinct token of the batch, ``char_index``
        each token's row in it, so the char CNN runs once per distinct string."""
        parts: List[torch.Tensor] = []
        if self.word_embed is not None:
            parts.append(self.word_embed(word_ids))
        if self.char_conv is not None:
            chars = self.char_embed(char_ids).transpose(1, 2)  # (distinct, char_dim, max_chars)
            conv = self.char_conv(chars)
            # padded character positions must not win the max-pool
            pad = (char_ids == 0).unsqueeze(1)
            pooled = conv.masked_fill(pad, -1e4).max(dim=2).values
            parts.append(pooled.index_select(0, char_index))
        if self.shape_embed is not None:
            parts.append(self.shape_embed(shape_ids))
        if self.n_extra:
            parts.append(extra)
        out = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        out = self.dropout(out)
        if self.project is not None:
            out = self.project(out)
        return out


class BiLSTM(nn.Module):
    """Bidirectional LSTM over packed sequences: tokens of one batch in, contextual vectors out,
    in the same flat order. Empty tweets are skipped (``pack_sequence`` rejects them)."""

    def __init__(self, n_in: int, hidden: int, depth: int, dropout: float) -> None:
        super().__init__()
        self.n_out = hidden * 2
        self.lstm = nn.LSTM(
            n_in,
            hidden,
            num_layers=depth,
            bidirectional=True,
            batch_first=True,
            dropout=dropout if depth > 1 else 0.0,
        )
        self.dropout_in = nn.Dropout(dropout)
        self.dropout_out = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
        lengths = [int(n) for n in lengths]
        if tokens.shape[0] == 0:
            return tokens.new_zeros((0, self.n_out))
        seqs = [s for s in torch.split(self.dropout_in(tokens), lengths) if s.shape[0]]
        packed = pack_sequence(seqs, enforce_sorted=False)
        out, _ = self.lstm(packed)
        padded, _ = pad_packed_sequence(out, batch_first=True)  # (docs, max_len, 2*hidden)
        nonempty = [n for n in lengths if n]
        mask = torch.arange(padded.shape[1], device=padded.device)[None, :] < torch.tensor(
            nonempty, device=padded.device
        )[:, None]
        return self.dropout_out(padded[mask])
