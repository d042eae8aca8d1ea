"""Brute-force enumeration of every tag path of a linear-chain CRF: the reference that the
torch CRF maths (test_torch_crf.py) and the decoders' scores (test_scores.py) are checked against."""
import itertools

import numpy

def path_score(em, path, trans, start, end=None):
    """Score of one tag path for one doc (em: (n, tags))."""
    s = start[path[0]] + em[0, path[0]]
    for t in range(1, len(path)):
        s += trans[path[t - 1], path[t]] + em[t, path[t]]
    if end is not None:
        s += end[path[-1]]
    return s


def all_paths(n, n_tags, gold=None):
    for path in itertools.product(range(n_tags), repeat=n):
        if gold is None or all(g < 0 or g == p for g, p in zip(gold, path)):
            yield path


def logsumexp(values):
    values = numpy.asarray(values, dtype="float64")
    top = values.max()
    return top + numpy.log(numpy.exp(values - top).sum())


def brute_best(em, trans, start, end=None):
    return max(all_paths(len(em), em.shape[1]), key=lambda p: path_score(em, p, trans, start, end))


def brute_log_z(em, trans, start, end, gold=None):
    return logsumexp([path_score(em, p, trans, start, end) for p in all_paths(len(em), em.shape[1], gold)])


def brute_marginals(em, trans, start, end):
    """Unary marginals (n, tags), summed pair marginals (tags, tags), first- and last-step
    marginals: the expected counts that are the gradients of log Z."""
    n, n_tags = em.shape
    paths = list(all_paths(n, n_tags))
    scores = numpy.array([path_score(em, p, trans, start, end) for p in paths])
    probs = numpy.exp(scores - logsumexp(scores))
    unary = numpy.zeros((n, n_tags))
    pair = numpy.zeros((n_tags, n_tags))
    first = numpy.zeros(n_tags)
    last = numpy.zeros(n_tags)
    for p, prob in zip(paths, probs):
        first[p[0]] += prob
        last[p[-1]] += prob
        for t, tag in enumerate(p):
            unary[t, tag] += prob
            if t:
                pair[p[t - 1], tag] += prob
    return unary, pair, first, last
