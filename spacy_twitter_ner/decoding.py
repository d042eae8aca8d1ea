"""BIO tag sets, constrained Viterbi decoding and the linear-chain CRF's loss, vectorised over a
padded batch (loops run over time steps, never over tweets or tokens).

The model scores every token for every BIO tag; a transition matrix (learned by a CRF, or zero for
a softmax decoder) plus hard BIO constraints (an ``I-X`` only after ``B-X``/``I-X``) make
decoding return valid entities whatever the per-token scores say.
"""
from typing import List, Optional, Sequence, Tuple

import numpy

# A large negative score rather than -inf: keeps logsumexp free of NaNs while making a
# forbidden transition impossible in practice.
FORBIDDEN = -1e4


def bio_tags(labels: Sequence[str]) -> List[str]:
    """``O`` then ``B-``/``I-`` for each label, in label order."""
    tags = ["O"]
    for label in labels:
        tags.extend((f"B-{label}", f"I-{label}"))
    return tags


def bio_constraints(tags: Sequence[str]) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """Additive scores: 0 where allowed, FORBIDDEN where BIO forbids. Returns
    (transitions[prev, cur], start[cur])."""
    n = len(tags)
    trans = numpy.zeros((n, n), dtype="float64")
    start = numpy.zeros((n,), dtype="float64")
    for j, cur in enumerate(tags):
        if not cur.startswith("I-"):
            continue
        start[j] = FORBIDDEN
        label = cur[2:]
        for i, prev in enumerate(tags):
            if prev not in (f"B-{label}", f"I-{label}"):
                trans[i, j] = FORBIDDEN
    return trans, start


def pad_scores(flat: numpy.ndarray, lengths: Sequence[int]) -> numpy.ndarray:
    """(tokens, tags) -> (docs, max_len, tags), zero padded."""
    lengths = numpy.asarray(lengths, dtype="int64")
    n_docs, width = len(lengths), flat.shape[1]
    max_len = int(lengths.max()) if n_docs else 0
    out = numpy.zeros((n_docs, max_len, width), dtype=flat.dtype)
    mask = numpy.arange(max_len)[None, :] < lengths[:, None]
    out[mask] = flat
    return out


def length_mask(lengths: Sequence[int], max_len: int) -> numpy.ndarray:
    return numpy.arange(max_len)[None, :] < numpy.asarray(lengths, dtype="int64")[:, None]


def viterbi(
    emissions: numpy.ndarray,
    lengths: Sequence[int],
    trans: numpy.ndarray,
    start: numpy.ndarray,
    end: Optional[numpy.ndarray] = None,
) -> numpy.ndarray:
    """Best tag path per doc. ``emissions``: (docs, max_len, tags). Returns (docs, max_len) tag
    ids (padding positions are 0)."""
    n_docs, max_len, n_tags = emissions.shape
    paths = numpy.zeros((n_docs, max_len), dtype="int64")
    if n_docs == 0 or max_len == 0:
        return paths
    lengths = numpy.asarray(lengths, dtype="int64")
    mask = length_mask(lengths, max_len)
    score = start[None, :] + emissions[:, 0]
    backptr = numpy.zeros((n_docs, max_len, n_tags), dtype="int64")
    for t in range(1, max_len):
        cand = score[:, :, None] + trans[None, :, :]  # (docs, prev, cur)
        best_prev = cand.argmax(axis=1)
        new = numpy.take_along_axis(cand, best_prev[:, None, :], axis=1)[:, 0] + emissions[:, t]
        live = mask[:, t][:, None]
        score = numpy.where(live, new, score)
        backptr[:, t] = numpy.where(live, best_prev, numpy.arange(n_tags)[None, :])
    if end is not None:
        score = score + end[None, :]
    last = score.argmax(axis=1)
    # walk back from each doc's last position; padded steps point to themselves
    for t in range(max_len - 1, -1, -1):
        paths[:, t] = last
        last = backptr[numpy.arange(n_docs), t, last]
    return numpy.where(mask, paths, 0)


def _logsumexp(x: numpy.ndarray, axis: int) -> numpy.ndarray:
    top = x.max(axis=axis, keepdims=True)
    return (top + numpy.log(numpy.exp(x - top).sum(axis=axis, keepdims=True))).squeeze(axis)


def forward_backward(
    emissions: numpy.ndarray,
    lengths: Sequence[int],
    trans: numpy.ndarray,
    start: numpy.ndarray,
    end: numpy.ndarray,
    allowed: Optional[numpy.ndarray] = None,
) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """Log partition per doc, unary marginals (docs, max_len, tags) and summed pairwise
    marginals (tags, tags) of a linear-chain CRF, for training (prediction uses ``marginals``).
    ``allowed`` (docs, max_len, tags) restricts the paths (used for the gold paths, with unknown
    gold tags left open)."""
    emissions = emissions.astype("float64")
    n_docs, max_len, n_tags = emissions.shape
    lengths = numpy.asarray(lengths, dtype="int64")
    mask = length_mask(lengths, max_len)
    if allowed is not None:
        emissions = numpy.where(allowed, emissions, FORBIDDEN)
    alpha = numpy.zeros((n_docs, max_len, n_tags))
    alpha[:, 0] = start[None, :] + emissions[:, 0]
    for t in range(1, max_len):
        new = _logsumexp(alpha[:, t - 1][:, :, None] + trans[None], axis=1) + emissions[:, t]
        alpha[:, t] = numpy.where(mask[:, t][:, None], new, alpha[:, t - 1])
    # alpha at each doc's last real position has been carried to the end of the padding
    log_z = _logsumexp(alpha[:, -1] + end[None, :], axis=1)
    beta = numpy.zeros((n_docs, max_len, n_tags))
    last = (numpy.arange(max_len)[None, :] == (lengths - 1)[:, None])
    beta[:, -1] = end[None, :]
    for t in range(max_len - 2, -1, -1):
        nxt = _logsumexp(trans[None] + (emissions[:, t + 1] + beta[:, t + 1])[:, None, :], axis=2)
        beta[:, t] = numpy.where(last[:, t][:, None], end[None, :],
                                 numpy.where(mask[:, t + 1][:, None], nxt, 0.0))
    marginals = numpy.exp(alpha + beta - log_z[:, None, None]) * mask[:, :, None]
    pair = numpy.zeros((n_tags, n_tags))
    for t in range(1, max_len):
        live = mask[:, t]
        if not live.any():
            break
        s = (alpha[live, t - 1][:, :, None] + trans[None]
             + (emissions[live, t] + beta[live, t])[:, None, :] - log_z[live][:, None, None])
        pair += numpy.exp(s).sum(axis=0)
    return log_z, marginals, pair


def marginals(
    emissions: numpy.ndarray,
    lengths: Sequence[int],
    trans: numpy.ndarray,
    start: numpy.ndarray,
    end: numpy.ndarray,
) -> numpy.ndarray:
    """Unary marginals (docs, max_len, tags) by the scaled forward-backward algorithm: in
    probability space with per-step normalisation, so each step is one batched matrix product
    instead of a log-sum-exp (the prediction path; ``forward_backward`` serves training)."""
    n_docs, max_len, n_tags = emissions.shape
    out = numpy.zeros(emissions.shape)
    if n_docs == 0 or max_len == 0:
        return out
    lengths = numpy.asarray(lengths, dtype="int64")
    mask = length_mask(lengths, max_len)
    E = numpy.exp(emissions - emissions.max(axis=2, keepdims=True))
    A = numpy.exp(trans - trans.max())
    alpha = numpy.zeros(emissions.shape)
    a = numpy.exp(start - start.max())[None, :] * E[:, 0]
    alpha[:, 0] = a / a.sum(axis=1, keepdims=True)
    for t in range(1, max_len):
        a = (alpha[:, t - 1] @ A) * E[:, t]
        a /= a.sum(axis=1, keepdims=True)
        alpha[:, t] = numpy.where(mask[:, t][:, None], a, alpha[:, t - 1])
    beta = numpy.ones(emissions.shape)
    last = numpy.arange(max_len)[None, :] == (lengths - 1)[:, None]
    final = numpy.exp(end - end.max())[None, :]
    beta[:, -1] = final
    for t in range(max_len - 2, -1, -1):
        b = (E[:, t + 1] * beta[:, t + 1]) @ A.T
        b /= b.sum(axis=1, keepdims=True)
        beta[:, t] = numpy.where(last[:, t][:, None], final, numpy.where(mask[:, t + 1][:, None], b, 1.0))
    out = alpha * beta
    out /= out.sum(axis=2, keepdims=True)
    return out * mask[:, :, None]


def crf_loss(
    emissions: numpy.ndarray,
    lengths: Sequence[int],
    gold: numpy.ndarray,
    trans: numpy.ndarray,
    start: numpy.ndarray,
    end: numpy.ndarray,
) -> Tuple[float, numpy.ndarray, numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """Negative log-likelihood of the gold paths and its gradients with respect to emissions,
    transitions, start and end scores. ``gold``: (docs, max_len) tag ids, -1 where unknown (that
    position is marginalised over instead of trusted)."""
    n_docs, max_len, n_tags = emissions.shape
    allowed = numpy.ones(emissions.shape, dtype=bool)
    known = gold >= 0
    onehot = numpy.eye(n_tags, dtype=bool)[numpy.maximum(gold, 0)]
    allowed = numpy.where(known[:, :, None], onehot, allowed)
    log_z, marg, pair = forward_backward(emissions, lengths, trans, start, end)
    log_z_gold, marg_gold, pair_gold = forward_backward(emissions, lengths, trans, start, end, allowed)
    loss = float((log_z - log_z_gold).sum())
    d_emissions = marg - marg_gold
    d_trans = pair - pair_gold
    d_start = marg[:, 0].sum(axis=0) - marg_gold[:, 0].sum(axis=0) if max_len else numpy.zeros(n_tags)
    lengths = numpy.asarray(lengths, dtype="int64")
    idx = numpy.arange(n_docs)
    last = numpy.maximum(lengths - 1, 0)
    d_end = (marg[idx, last] - marg_gold[idx, last])[lengths > 0].sum(axis=0)
    return loss, d_emissions, d_trans, d_start, d_end


def softmax(scores: numpy.ndarray) -> numpy.ndarray:
    e = numpy.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
