"""Linear-chain CRF maths in PyTorch, batched over padded sequences: the log partition (forward
algorithm), log marginals (forward-backward), Viterbi. Pure torch, on whatever device the
tensors are on; gradients come from autograd. Loops run over time steps, never over docs.

Shapes: ``emissions`` (docs, steps, tags), ``mask`` (docs, steps) bool with each row's real
tokens first, ``transitions`` (tags, tags) as [previous, current], ``start``/``end`` (tags,).
"""
from typing import Optional

import torch

# Added inside the log of a transition step: keeps a path that only forbidden transitions can
# continue (an invalid gold path) finite instead of -inf.
TINY = 1e-30


def _exp_shifted(transitions: torch.Tensor):
    """exp(transitions - max) and the max: safe from overflow whatever the learned scores."""
    top = transitions.max().detach()
    return (transitions - top).exp(), top


def _step(prev: torch.Tensor, exp_trans) -> torch.Tensor:
    """log-sum-exp over the previous tag, ``log sum_i exp(prev[:, i] + trans[i, j])``, as one
    matrix product in probability space (shifted by each row's max): a few (docs, tags)
    operations per step instead of a (docs, tags, tags) log-sum-exp."""
    matrix, shift = exp_trans
    top = prev.amax(dim=1, keepdim=True)
    return torch.log((prev - top).exp() @ matrix + TINY) + top + shift


def log_partition(
    emissions: torch.Tensor,
    mask: torch.Tensor,
    transitions: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
) -> torch.Tensor:
    """log Z per doc (docs,). A doc without tokens has log Z = 0."""
    alpha = _forward(emissions, mask, transitions, start)[-1]
    log_z = torch.logsumexp(alpha + end, dim=-1)
    return torch.where(mask[:, 0], log_z, torch.zeros_like(log_z)) if mask.shape[1] else log_z * 0


def _forward(emissions, mask, transitions, start):
    """alpha per step (a list of (docs, tags)); a padded step carries the last real alpha."""
    n_docs, n_steps, n_tags = emissions.shape
    if n_steps == 0:
        return [emissions.new_zeros((n_docs, n_tags))]
    exp_trans = _exp_shifted(transitions)
    alphas = [start + emissions[:, 0]]
    for t in range(1, n_steps):
        prev = alphas[-1]
        new = _step(prev, exp_trans) + emissions[:, t]
        alphas.append(torch.where(mask[:, t : t + 1], new, prev))
    return alphas


def log_marginals(
    emissions: torch.Tensor,
    mask: torch.Tensor,
    transitions: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
) -> torch.Tensor:
    """log P(tag at step t) per doc (docs, steps, tags), differentiable; padded steps are 0."""
    n_docs, n_steps, n_tags = emissions.shape
    if n_steps == 0:
        return emissions
    alphas = _forward(emissions, mask, transitions, start)
    log_z = torch.logsumexp(alphas[-1] + end, dim=-1)
    # beta at step t: log-sum over the continuations; the last real step gets ``end``
    exp_trans_t = _exp_shifted(transitions.t())
    betas = [None] * n_steps
    last = end.expand(n_docs, n_tags)
    betas[-1] = last
    for t in range(n_steps - 2, -1, -1):
        nxt = _step(emissions[:, t + 1] + betas[t + 1], exp_trans_t)
        betas[t] = torch.where(mask[:, t + 1 : t + 2], nxt, last)
    out = torch.stack(alphas, dim=1) + torch.stack(betas, dim=1) - log_z[:, None, None]
    return out.masked_fill(~mask.unsqueeze(2), 0.0)


def viterbi(
    emissions: torch.Tensor,
    mask: torch.Tensor,
    transitions: torch.Tensor,
    start: torch.Tensor,
    end: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """The best tag path per doc (docs, steps), int64; padded steps are 0."""
    n_docs, n_steps, n_tags = emissions.shape
    paths = torch.zeros((n_docs, n_steps), dtype=torch.long, device=emissions.device)
    if n_docs == 0 or n_steps == 0:
        return paths
    score = start + emissions[:, 0]
    keep = torch.arange(n_tags, device=emissions.device).expand(n_docs, n_tags)
    to_from = transitions.t().contiguous()  # [current, previous]: the max runs over the last axis
    backptrs = []
    for t in range(1, n_steps):
        best, best_prev = (score.unsqueeze(1) + to_from).max(dim=2)
        live = mask[:, t : t + 1]
        score = torch.where(live, best + emissions[:, t], score)
        backptrs.append(torch.where(live, best_prev, keep))
    if end is not None:
        score = score + end
    last = score.argmax(dim=1)
    paths[:, n_steps - 1] = last
    for t in range(n_steps - 2, -1, -1):  # padded steps point to themselves
        last = backptrs[t].gather(1, last.unsqueeze(1)).squeeze(1)
        paths[:, t] = last
    return paths.masked_fill(~mask, 0)
