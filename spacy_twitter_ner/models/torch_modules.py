"""The PyTorch modules of the tagger. Each is wrapped by thinc's ``PyTorchWrapper`` in
``features.py``/``encoder.py``; nothing here knows about spaCy.

Tokens arrive flat (all tokens of a batch of tweets one after the other, thinc's ``Ragged``
layout), so no computation is spent on padding except inside the BiLSTM, which is given packed
sequences.
"""
import threading
import warnings
from typing import List, Optional, Sequence, Tuple

import numpy
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence

# Dropout here depends on the explicit ``is_train`` argument of ``forward``, never on the
# module's train/eval mode: thinc's PyTorchShim.predict flips that mode on the one shared module
# (eval, run, train), so mode-dependent dropout would switch on for another thread mid-forward.


# Prediction runs the char CNN of strings up to this many characters on this many columns only.
SHORT_TOKEN_CHARS = 8

# Index of the ``<UNK>`` row of the word embedding (lexical.build_vocab puts <PAD>, <UNK> first).
UNK_ID = 1


class TokenFeaturizer(nn.Module):
    """Per-token input vector: word embedding (normalised form), a character CNN, a casing/shape
    embedding and dense extra features (gazetteer flags), concatenated and, when their total
    differs from ``width``, projected to ``width``.

    ``word_dropout``: in training, each token's word id becomes ``<UNK>`` with this probability,
    so the model learns to tag a word it has no embedding for from its characters, knowledge rows
    and context (Lample et al. 2016); names unseen in training are what Twitter NER misses most.

    ``lookup_extra``: (start, end) column ranges of ``extra`` that are lookups of the token's
    string (static vectors, Brown clusters). A token whose word id word dropout replaced gets
    zeros there too, which is what a word unknown to every table gets at prediction: static
    vectors miss ~28% of WNUT17's test entity tokens.

    ``binary_extra``: (start, end) column ranges of ``extra`` that hold 0/1 flags, mostly zeros
    (gazetteer flags, cluster one-hots). At prediction their part of the projection is a sum of
    the weight columns of the flags that are set (``embedding_bag``) instead of a dense product
    over hundreds of zeros; training keeps the dense product (same parameters, same result).
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
        binary_extra: Sequence[Tuple[int, int]] = (),
        lookup_extra: Sequence[Tuple[int, int]] = (),
        string_extra: Sequence[Tuple[int, int]] = (),
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
        binary = numpy.zeros(n_extra, dtype=bool)
        for lo, hi in binary_extra:
            if not 0 <= lo <= hi <= n_extra:
                raise ValueError(f"TokenFeaturizer: binary_extra range ({lo}, {hi}) is outside the {n_extra} extra columns")
            binary[lo:hi] = True
        lookup = numpy.zeros(n_extra, dtype="float32")
        for lo, hi in lookup_extra:
            if not 0 <= lo <= hi <= n_extra:
                raise ValueError(f"TokenFeaturizer: lookup_extra range ({lo}, {hi}) is outside the {n_extra} extra columns")
            lookup[lo:hi] = 1.0
        self._lookup_extra = lookup if lookup.any() else None
        per_string = numpy.zeros(n_extra, dtype=bool)
        for lo, hi in string_extra:
            if not 0 <= lo <= hi <= n_extra:
                raise ValueError(f"TokenFeaturizer: string_extra range ({lo}, {hi}) is outside the {n_extra} extra columns")
            per_string[lo:hi] = True
        # Prediction splits the projection input three ways, as column indices of extra and of
        # the whole input (plain arrays, not buffers: nothing new in a saved model): the dense
        # columns that depend on the string alone (word, chars, shape, static vectors), projected
        # once per distinct string; the other dense ones (contextual rows), per token; the
        # binary ones, summed as weight columns.
        n_base = total - n_extra
        self._binary_extra = numpy.flatnonzero(binary)
        self._string_extra = numpy.flatnonzero(~binary & per_string)
        self._context_extra = numpy.flatnonzero(~binary & ~per_string)
        self._string_input = numpy.concatenate([numpy.arange(n_base), n_base + self._string_extra])
        self._index_cache: Optional[Tuple[torch.device, Tuple[torch.Tensor, ...]]] = None

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
        """``char_ids`` holds the characters of each distinct string of the batch, ``char_index``
        each token's row in it, so the char CNN runs once per distinct string. Tokens with the
        same row are the same string: their ``word_ids``, ``shape_ids`` and ``string_extra``
        columns agree (``LexicalTable.featurize_batch`` and the string lookups make them so),
        which lets prediction project those inputs once per string."""
        if self.project is not None and not is_train:
            return self._predict_projected(word_ids, char_ids, char_index, shape_ids, extra)
        parts: List[torch.Tensor] = []
        if self.word_embed is not None:
            if is_train and self.word_dropout:
                dropped = (torch.rand(word_ids.shape, device=word_ids.device) < self.word_dropout) & (word_ids > UNK_ID)
                word_ids = word_ids.masked_fill(dropped, UNK_ID)
                if self._lookup_extra is not None:
                    columns = torch.from_numpy(self._lookup_extra).to(extra.device)
                    extra = extra * (1.0 - dropped.to(extra.dtype).unsqueeze(1) * columns)
            parts.append(self.word_embed(word_ids))
        if self.char_conv is not None:
            parts.append(self._char_cnn(char_ids).index_select(0, char_index))
        if self.shape_embed is not None:
            parts.append(self.shape_embed(shape_ids))
        if self.n_extra:
            parts.append(extra)
        out = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        out = F.dropout(out, self.dropout, training=is_train)
        if self.project is not None:
            out = self.project(out)
        return out

    def _predict_projected(
        self,
        word_ids: torch.Tensor,
        char_ids: torch.Tensor,
        char_index: torch.Tensor,
        shape_ids: torch.Tensor,
        extra: torch.Tensor,
    ) -> torch.Tensor:
        """``project(cat(word, chars, shape, extra))`` at prediction (no dropout), the same sums
        done with less work: the inputs that are functions of the string alone are projected
        once per distinct string of the batch (about half its tokens) and gathered per token;
        the binary columns of ``extra`` (mostly zeros) are summed as the weight columns of their
        set flags (``embedding_bag``) instead of a dense product over hundreds of zeros."""
        string_extra, context_extra, binary_extra, string_input, context_input, binary_input = self._indices(extra.device)
        weight = self.project.weight
        n_strings = char_ids.shape[0]
        # one token of each distinct string (any: they are the same string; a row no token
        # points to takes token 0 and is never gathered)
        first = torch.zeros(n_strings, dtype=torch.long, device=char_index.device)
        first.scatter_(0, char_index, torch.arange(len(char_index), device=char_index.device))
        parts: List[torch.Tensor] = []
        if self.word_embed is not None:
            parts.append(self.word_embed(word_ids.index_select(0, first)))
        if self.char_conv is not None:
            if char_ids.shape[1] <= SHORT_TOKEN_CHARS:
                parts.append(self._char_cnn(char_ids))
            else:
                parts.append(self._char_cnn_by_length(char_ids))
        if self.shape_embed is not None:
            parts.append(self.shape_embed(shape_ids.index_select(0, first)))
        if len(string_extra):
            parts.append(extra.index_select(0, first).index_select(1, string_extra))
        per_string = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        out = F.linear(per_string, weight.index_select(1, string_input), self.project.bias).index_select(0, char_index)
        if len(context_extra):
            out = out + F.linear(extra.index_select(1, context_extra), weight.index_select(1, context_input))
        if len(binary_extra):
            flags = extra.index_select(1, binary_extra)
            rows, cols = flags.nonzero(as_tuple=True)
            if len(rows):
                offsets = torch.zeros(flags.shape[0], dtype=torch.long, device=extra.device)
                offsets[1:] = torch.cumsum(torch.bincount(rows, minlength=flags.shape[0]), 0)[:-1]
                out = out + F.embedding_bag(cols, weight.index_select(1, binary_input).t(), offsets,
                                            mode="sum", per_sample_weights=flags[rows, cols])
        return out

    def _char_cnn(self, char_ids: torch.Tensor) -> torch.Tensor:
        """Max-pooled char CNN filters of each row of ``char_ids`` (distinct, max_chars)."""
        chars = self.char_embed(char_ids).transpose(1, 2)  # (distinct, char_dim, max_chars)
        conv = self.char_conv(chars)
        # padded character positions must not win the max-pool
        return conv.masked_fill((char_ids == 0).unsqueeze(1), -1e4).max(dim=2).values

    def _char_cnn_by_length(self, char_ids: torch.Tensor) -> torch.Tensor:
        """``_char_cnn`` with the short strings (most of a tweet's) cut to ``SHORT_TOKEN_CHARS``
        columns first, so the CNN does not convolve the padding up to the batch's longest token
        (prediction: half the work; the positions past a string's end are padding either way)."""
        short = (char_ids[:, SHORT_TOKEN_CHARS:] == 0).all(dim=1)
        out = char_ids.new_empty((char_ids.shape[0], self.char_conv.out_channels), dtype=self.char_conv.weight.dtype)
        for rows, width in ((short.nonzero().squeeze(1), SHORT_TOKEN_CHARS), ((~short).nonzero().squeeze(1), None)):
            if len(rows):
                out[rows] = self._char_cnn(char_ids.index_select(0, rows)[:, :width])
        return out

    def _indices(self, device: torch.device) -> Tuple[torch.Tensor, ...]:
        cached = self._index_cache
        if cached is None or cached[0] != device:
            n_base = len(self._string_input) - len(self._string_extra)
            arrays = (self._string_extra, self._context_extra, self._binary_extra, self._string_input,
                      n_base + self._context_extra, n_base + self._binary_extra)
            cached = self._index_cache = (device, tuple(torch.from_numpy(a).long().to(device) for a in arrays))
        return cached[1]


class BiLSTM(nn.Module):
    """Bidirectional LSTM over packed sequences: tokens of one batch in, contextual vectors out,
    in the same flat order. Empty tweets are skipped (``pack_sequence`` rejects them). Layers
    are stacked by hand so that the dropout between them follows ``is_train`` too.

    ``quantize``: prediction on a CPU runs an int8 copy of the LSTM weights (torch's dynamic
    quantization: weights int8, activations quantized on the fly), the largest single cost of a
    fast model's prediction made cheaper. Training, GPU and the saved weights stay float32;
    the copy is made on the first prediction after the weights changed (a training forward or
    a ``load_state_dict``, which is also how thinc swaps in averaged parameters). Where the
    installed torch cannot quantize, prediction runs in float32, with one warning."""

    def __init__(self, n_in: int, hidden: int, depth: int, dropout: float, quantize: bool = False) -> None:
        super().__init__()
        self.n_out = hidden * 2
        self.layers = nn.ModuleList(
            nn.LSTM(n_in if i == 0 else hidden * 2, hidden, bidirectional=True, batch_first=True)
            for i in range(depth)
        )
        self.dropout = dropout
        self.quantize = quantize
        # (int8 layers,) or () : a tuple, so that torch does not register it as a submodule
        # (it is not a parameter: never saved, never trained)
        self._int8: Tuple[nn.ModuleList, ...] = ()
        self.register_load_state_dict_post_hook(_forget_int8)  # a named function: picklable

    def drop_int8(self) -> None:
        """Forget the int8 copy (the float weights changed)."""
        self._int8 = ()

    def __getstate__(self):
        # pickled/deep-copied pipelines (Dask workers, thinc's copy) rebuild the copy themselves
        state = super().__getstate__()
        state["_int8"] = ()
        return state

    def forward(self, tokens: torch.Tensor, lengths: Sequence[int], is_train: bool = False) -> torch.Tensor:
        lengths = [int(n) for n in lengths]
        if is_train:
            self.drop_int8()
        if tokens.shape[0] == 0:
            return tokens.new_zeros((0, self.n_out))
        layers = self.layers
        if self.quantize and not is_train and tokens.device.type == "cpu":
            layers = self._int8_layers()
        to_packed, from_packed, batch_sizes, sorted_idx, unsorted_idx = packing(lengths, tokens.device)
        out = F.dropout(tokens, self.dropout, training=is_train)
        data = out.index_select(0, to_packed)
        for i, lstm in enumerate(layers):
            if i:
                data = F.dropout(data, self.dropout, training=is_train)
            packed, _ = lstm(PackedSequence(data, batch_sizes, sorted_idx, unsorted_idx))
            data = packed.data
        return F.dropout(data.index_select(0, from_packed), self.dropout, training=is_train)

    def _int8_layers(self) -> nn.ModuleList:
        cached = self._int8
        if cached:
            return cached[0]
        with _QUANTIZE_LOCK:  # one thread builds it; the others wait and share it
            if not self._int8:
                self._int8 = (quantize_lstms(self.layers),)
            return self._int8[0]


def _forget_int8(module: "BiLSTM", _incompatible_keys) -> None:
    module.drop_int8()


_QUANTIZE_LOCK = threading.Lock()


def quantize_lstms(layers: nn.ModuleList) -> nn.ModuleList:
    """An int8 copy of ``layers`` (torch's dynamic quantization of ``nn.LSTM``), or ``layers``
    itself where this torch cannot quantize (warned; Python shows it once per place). torch
    2.13 marks the eager-mode API deprecated in favour of torchao, which has no LSTM: its
    warnings are silenced here."""
    try:
        from torch.ao.quantization import quantize_dynamic

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return quantize_dynamic(layers, {nn.LSTM}, dtype=torch.qint8, inplace=False)
    except Exception as err:  # no quantized engine on this build, or the API was removed
        warnings.warn(f"BiLSTM quantize=True: torch could not quantize the LSTM ({err}); predicting in float32")
        return layers


def packing(lengths: Sequence[int], device: torch.device):
    """How the flat tokens of sequences of ``lengths`` (empty ones allowed) map to an LSTM's
    packed layout (time step by time step, longest sequence first), computed in one go rather
    than by padding and slicing each sequence: (flat -> packed gather index, packed -> flat
    gather index, batch_sizes, sorted_indices, unsorted_indices), as ``pack_sequence``
    with ``enforce_sorted=False`` would lay them out."""
    lengths_np = numpy.asarray(lengths, dtype="int64")
    starts = numpy.concatenate([[0], numpy.cumsum(lengths_np)[:-1]])
    nonempty = numpy.flatnonzero(lengths_np)
    order = nonempty[numpy.argsort(-lengths_np[nonempty], kind="stable")]
    sorted_lengths = lengths_np[order]
    steps = numpy.arange(int(sorted_lengths[0]))
    present = sorted_lengths[None, :] > steps[:, None]  # (time, sorted sequence)
    to_packed = (starts[order][None, :] + steps[:, None])[present]
    from_packed = numpy.empty_like(to_packed)
    from_packed[to_packed] = numpy.arange(len(to_packed))  # every token is in one packed row
    batch_sizes = torch.from_numpy(present.sum(axis=1))
    sorted_idx = torch.from_numpy(numpy.argsort(-lengths_np[nonempty], kind="stable")).to(device)
    unsorted_idx = torch.empty_like(sorted_idx)
    unsorted_idx[sorted_idx] = torch.arange(len(sorted_idx), device=device)
    return (torch.from_numpy(to_packed).to(device), torch.from_numpy(from_packed).to(device),
            batch_sizes, sorted_idx, unsorted_idx)

