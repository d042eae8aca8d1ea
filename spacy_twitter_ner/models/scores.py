"""What a decoder layer outputs: the per-token tag scores of a batch, with the loss and the
decoding that belong to them.

A component never does maths on scores: it calls ``scores.loss(truth)`` in training (gold tag
ids, or soft targets: per-token tag distributions, e.g. a teacher's marginals) and
``scores.decode()`` at prediction. ``loss`` returns the gradient as an object of the same kind,
which is what the decoder's backprop takes. Everything runs in torch on the device of the
scores (autograd gives the gradients); nothing is copied to the host here.
"""
import functools
from typing import List, Optional, Sequence, Tuple, Union

import numpy
import torch
from thinc.api import Ops, Ragged, torch2xp, xp2torch
from thinc.types import Floats1d, Floats2d, Ints1d

from . import torch_crf
from .bio import FORBIDDEN, bio_constraints

# Docs decoded together (sorted by length), so the time-step loops do not run over the
# padding of one long tweet.
DECODE_CHUNK = 128
Truth = Union[Ints1d, Floats2d]


@functools.lru_cache(maxsize=64)
def _bio_constraints(n_tags: int, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """The BIO constraint scores as tensors on ``device``, made once per tag count and device
    (never copied from the host per batch)."""
    return tuple(torch.from_numpy(a).to(device) for a in bio_constraints(n_tags))


class TagScores:
    """Per-token scores (``emissions``: Ragged (tokens, tags), one row per token of each doc)
    of a tagger whose tags are independent given the scores (the softmax decoder)."""

    def __init__(self, ops: Ops, emissions: Ragged) -> None:
        self.ops = ops
        self.emissions = emissions

    @property
    def n_tags(self) -> int:
        # data_shape, not data.shape: thinc stores an empty Ragged's data as (0, 0)
        return int(self.emissions.data_shape[-1])

    # -- the parts a subclass changes ------------------------------------------------------

    def _potentials(self, requires_grad: bool = False):
        """(transitions, start, end) torch tensors, constraints included; end may be None."""
        trans, start = self._constraints()
        return trans, start, None

    def _unary(self, emissions: torch.Tensor) -> torch.Tensor:
        """Scores Viterbi maximises: log-probabilities for a softmax tagger."""
        return torch.log_softmax(emissions, dim=-1)

    def _log_marginals(self, emissions: torch.Tensor, mask: torch.Tensor, potentials) -> torch.Tensor:
        return torch.log_softmax(emissions, dim=-1)

    def _nll(self, emissions: torch.Tensor, mask: torch.Tensor, gold: torch.Tensor, potentials) -> torch.Tensor:
        logp = torch.log_softmax(emissions, dim=-1)
        known = gold >= 0
        return -logp.gather(2, gold.clamp(min=0).unsqueeze(2)).squeeze(2)[known].sum()

    def _gradient(self, d_emissions: Ragged, potentials) -> "TagScores":
        return TagScores(self.ops, d_emissions)

    # -- the interface ---------------------------------------------------------------------

    def loss(self, truth: Truth, soft: Optional[Floats2d] = None) -> Tuple[float, "TagScores"]:
        """Mean loss per token with a target, and its gradient.

        ``truth``: (tokens,) gold tag ids, -1 where unknown (a CRF marginalises over those), or
        (tokens, tags) target distributions. ``soft``: optional (tokens, tags) distributions for
        tokens whose id is -1 (rows of zeros elsewhere), e.g. a teacher's marginals: their
        cross-entropy against the model's tag marginals is added (distillation)."""
        flat = xp2torch(self.emissions.data, requires_grad=True, device=self._device)
        emissions, mask = self._pad(flat)
        potentials = self._potentials(requires_grad=True)
        truth_t = xp2torch(self.ops.xp.asarray(truth), device=self._device)
        total, n_targets = emissions.sum() * 0.0, 0
        if truth_t.dim() == 1:
            n_targets += int((truth_t >= 0).sum())
            total = total + self._nll(emissions, mask, self._pad_with(truth_t, mask, fill=-1), potentials)
        else:
            soft = truth if soft is None else self.ops.xp.asarray(truth) + self.ops.xp.asarray(soft)
        if soft is not None:
            target = self._pad_with(xp2torch(self.ops.xp.asarray(soft), device=self._device).float(), mask, fill=0.0)
            n_targets += int((target.sum(dim=2) > 0).sum())
            total = total - (target * self._log_marginals(emissions, mask, potentials)).sum()
        loss = total / max(1, n_targets)
        loss.backward()
        grad = flat.grad if flat.grad is not None else torch.zeros_like(flat)
        d_emissions = Ragged(torch2xp(grad), self.emissions.lengths)
        return float(loss.detach()), self._gradient(d_emissions, potentials)

    def decode(
        self, outside: Optional[numpy.ndarray] = None, outside_bias: float = 0.0
    ) -> Tuple[List[Ints1d], List[Floats2d]]:
        """Per doc: the best path under the BIO constraints (tag ids) and each token's tag
        probabilities (marginals). ``outside``: (tokens,) bool, tokens that can only be ``O``.
        ``outside_bias``: subtracted from every token's ``O`` score (tag 0) for the path only,
        a precision/recall trade-off chosen on dev (> 0: more entities); the probabilities
        stay the model's own."""
        lengths = self.ops.to_numpy(self.emissions.lengths).astype("int64")
        # float64: the forward-backward sums grow with the doc's length, and in float32 the
        # marginals of a long doc drift far from summing to 1 (~2e-2 at 1,000 tokens)
        flat = xp2torch(self.emissions.data, device=self._device).double()
        if outside is not None and outside.any():
            flat = flat.clone()
            flat[xp2torch(self.ops.xp.asarray(outside), device=self._device), 1:] = FORBIDDEN
        # on the unary scores of the path only: a per-token constant on the O column (for a
        # softmax decoder the same path as biasing the logits: log-softmax adds a per-token
        # constant to every tag)
        shift = None
        if outside_bias:
            shift = torch.zeros(self.n_tags, dtype=flat.dtype, device=self._device)
            shift[0] = float(outside_bias)
        per_doc = torch.split(flat, lengths.tolist())
        paths: List = [self.ops.alloc1i(0)] * len(per_doc)
        probs: List = [self.ops.alloc2f(0, self.n_tags)] * len(per_doc)
        order = numpy.argsort(lengths, kind="stable")
        with torch.no_grad():
            potentials = tuple(p if p is None else p.to(flat.dtype) for p in self._potentials())
            for lo in range(0, len(order), DECODE_CHUNK):
                chunk = [int(i) for i in order[lo : lo + DECODE_CHUNK] if lengths[i]]
                if not chunk:
                    continue
                emissions = torch.nn.utils.rnn.pad_sequence([per_doc[i] for i in chunk], batch_first=True)
                mask = self._mask(lengths[chunk], emissions.shape[1])
                unary = self._unary(emissions)
                best = torch2xp(torch_crf.viterbi(unary if shift is None else unary - shift, mask, *potentials))
                marg = torch2xp(self._log_marginals(emissions, mask, potentials).exp())
                for j, i in enumerate(chunk):
                    n = int(lengths[i])
                    paths[i], probs[i] = best[j, :n], marg[j, :n]
        return paths, probs

    @classmethod
    def mean(cls, members: Sequence["TagScores"]) -> "TagScores":
        """The scores of an ensemble: the mean of its members' (a product of experts)."""
        first = members[0]
        data = first.ops.xp.mean(first.ops.xp.stack([m.emissions.dataXd for m in members]), axis=0)
        return cls(first.ops, Ragged(first.ops.asarray2f(data), first.emissions.lengths))

    # -- helpers ---------------------------------------------------------------------------

    @property
    def _device(self) -> torch.device:
        data = self.emissions.data
        return torch.device("cpu") if isinstance(data, numpy.ndarray) else torch.device("cuda", data.device.id)

    def _constraints(self) -> Tuple[torch.Tensor, torch.Tensor]:
        return _bio_constraints(self.n_tags, self._device)

    def _mask(self, lengths: Sequence[int], n_steps: int) -> torch.Tensor:
        lengths_t = torch.as_tensor(numpy.asarray(lengths), device=self._device)
        return torch.arange(n_steps, device=self._device)[None, :] < lengths_t[:, None]

    def _pad(self, flat: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        lengths = self.ops.to_numpy(self.emissions.lengths).astype("int64")
        if not len(lengths):
            return flat.new_zeros((0, 0, self.n_tags)), torch.zeros((0, 0), dtype=torch.bool)
        padded = torch.nn.utils.rnn.pad_sequence(list(torch.split(flat, lengths.tolist())), batch_first=True)
        return padded, self._mask(lengths, padded.shape[1])

    def _pad_with(self, flat: torch.Tensor, mask: torch.Tensor, fill) -> torch.Tensor:
        shape = tuple(mask.shape) + tuple(flat.shape[1:])
        out = torch.full(shape, fill, dtype=flat.dtype, device=flat.device)
        out[mask] = flat
        return out


class CRFScores(TagScores):
    """Scores of a linear-chain CRF: per-token scores plus learned transition, start and end
    scores (``xp`` arrays); the BIO constraints are added here, never learned."""

    def __init__(self, ops: Ops, emissions: Ragged, transitions: Floats2d, start: Floats1d, end: Floats1d) -> None:
        super().__init__(ops, emissions)
        self.transitions, self.start, self.end = transitions, start, end

    def _potentials(self, requires_grad: bool = False):
        hard_trans, hard_start = self._constraints()
        learned = [xp2torch(p, requires_grad=requires_grad, device=self._device) for p in (self.transitions, self.start, self.end)]
        self._learned = learned
        return learned[0] + hard_trans, learned[1] + hard_start, learned[2]

    def _unary(self, emissions: torch.Tensor) -> torch.Tensor:
        return emissions

    def _log_marginals(self, emissions, mask, potentials) -> torch.Tensor:
        return torch_crf.log_marginals(emissions, mask, *potentials)

    def _nll(self, emissions, mask, gold, potentials) -> torch.Tensor:
        """log Z - log Z over the gold paths; an unknown gold tag (-1) is marginalised over."""
        allowed = (gold.unsqueeze(2) < 0) | (gold.unsqueeze(2) == torch.arange(self.n_tags, device=gold.device))
        log_z = torch_crf.log_partition(emissions, mask, *potentials)
        log_z_gold = torch_crf.log_partition(emissions.masked_fill(~allowed, FORBIDDEN), mask, *potentials)
        return (log_z - log_z_gold).sum()

    def _gradient(self, d_emissions: Ragged, potentials) -> "CRFScores":
        grads = [torch2xp(p.grad) if p.grad is not None else self.ops.xp.zeros_like(v)
                 for p, v in zip(self._learned, (self.transitions, self.start, self.end))]
        return CRFScores(self.ops, d_emissions, *grads)

    @classmethod
    def mean(cls, members: Sequence["CRFScores"]) -> "CRFScores":
        xp = members[0].ops.xp
        base = TagScores.mean(members)
        params = [xp.mean(xp.stack([getattr(m, name) for m in members]), axis=0) for name in ("transitions", "start", "end")]
        return cls(base.ops, base.emissions, *params)
