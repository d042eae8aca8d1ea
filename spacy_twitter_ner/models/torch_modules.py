"""The PyTorch modules of the tagger. Each is wrapped by thinc's ``PyTorchWrapper`` in
``features.py``/``encoder.py``; nothing here knows about spaCy.

Tokens arrive flat (all tokens of a batch of tweets one after the other, thinc's ``Ragged``
layout), so no computation is spent on padding except inside the BiLSTM, which is given packed
sequences.
"""
from typing import List, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence

# Dropout here depends on the explicit ``is_train`` argument of ``forward``, never on the
# module's train/eval mode: thinc's PyTorchShim.predict flips that mode on the one shared module
# (eval, run, train), so mode-dependent dropout would switch on for another thread mid-forward.


# Index of the ``<UNK>`` row of the word embedding (lexical.build_vocab puts <PAD>, <UNK> first).
UNK_ID = 1


class TokenFeaturizer(nn.Module):
    """Per-token input vector: word embedding (normalised form), a character CNN, a casing/shape
    embedding and dense extra features (gazetteer flags), concatenated and, when their total
    differs from ``width``, projected to ``width``.

    ``word_dropout``: in training, each token's word id becomes ``<UNK>`` with this probability,
    so the model learns to tag a word it has no embedding for from its characters, knowledge rows
    and context (Lample et al. 2016); names unseen in training are what Twitter NER misses most.
    """

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
        word_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= word_dropout < 1.0:
            raise ValueError(f"TokenFeaturizer: word_dropout must be in [0, 1), got {word_dropout}")
        self.word_dropout = float(word_dropout)
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
        self.dropout = dropout

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
        is_train: bool = False,
    ) -> torch.Tensor:
        """``char_ids`` holds the characters of each distinct token of the batch, ``char_index``
        each token's row in it, so the char CNN runs once per distinct string."""
        parts: List[torch.Tensor] = []
        if self.word_embed is not None:
            if is_train and self.word_dropout:
                unknown = torch.rand(word_ids.shape, device=word_ids.device) < self.word_dropout
                word_ids = word_ids.masked_fill(unknown & (word_ids > UNK_ID), UNK_ID)
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
        out = F.dropout(out, self.dropout, training=is_train)
        if self.project is not None:
            out = self.project(out)
        return out


class BiLSTM(nn.Module):
    """Bidirectional LSTM over packed sequences: tokens of one batch in, contextual vectors out,
    in the same flat order. Empty tweets are skipped (``pack_sequence`` rejects them). Layers
    are stacked by hand so that the dropout between them follows ``is_train`` too."""

    def __init__(self, n_in: int, hidden: int, depth: int, dropout: float) -> None:
        super().__init__()
        self.n_out = hidden * 2
        self.layers = nn.ModuleList(
            nn.LSTM(n_in if i == 0 else hidden * 2, hidden, bidirectional=True, batch_first=True)
            for i in range(depth)
        )
        self.dropout = dropout

    def forward(self, tokens: torch.Tensor, lengths: Sequence[int], is_train: bool = False) -> torch.Tensor:
        lengths = [int(n) for n in lengths]
        if tokens.shape[0] == 0:
            return tokens.new_zeros((0, self.n_out))
        nonempty = [n for n in lengths if n]
        out = F.dropout(tokens, self.dropout, training=is_train)
        seqs: List[torch.Tensor] = [s for s in torch.split(out, lengths) if s.shape[0]]
        for i, lstm in enumerate(self.layers):
            if i:
                seqs = [F.dropout(s, self.dropout, training=is_train) for s in seqs]
            packed, _ = lstm(pack_sequence(seqs, enforce_sorted=False))
            padded, _ = pad_packed_sequence(packed, batch_first=True)  # (docs, max_len, 2*hidden)
            seqs = [padded[j, :n] for j, n in enumerate(nonempty)]
        return F.dropout(torch.cat(seqs), self.dropout, training=is_train)
