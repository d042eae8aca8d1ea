"""Decoding against brute force: Viterbi, forward-backward and the CRF loss (with gradients)."""
import itertools

import numpy
import pytest

from spacy_twitter_ner.decoding import (
    FORBIDDEN,
    bio_constraints,
    bio_tags,
    crf_loss,
    forward_backward,
    pad_scores,
    viterbi,
)

SEEDS = list(range(12))


# -- brute force -------------------------------------------------------------------------------


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
    n_tags = em.shape[1]
    return max(all_paths(len(em), n_tags), key=lambda p: path_score(em, p, trans, start, end))


def brute_log_z(em, trans, start, end, gold=None):
    return logsumexp([path_score(em, p, trans, start, end) for p in all_paths(len(em), em.shape[1], gold)])


def brute_marginals(em, trans, start, end):
    n, n_tags = em.shape
    paths = list(all_paths(n, n_tags))
    scores = numpy.array([path_score(em, p, trans, start, end) for p in paths])
    probs = numpy.exp(scores - logsumexp(scores))
    unary = numpy.zeros((n, n_tags))
    pair = numpy.zeros((n_tags, n_tags))
    for p, prob in zip(paths, probs):
        for t, tag in enumerate(p):
            unary[t, tag] += prob
            if t:
                pair[p[t - 1], tag] += prob
    return unary, pair


# -- random problems ---------------------------------------------------------------------------


def random_problem(seed, constrained=True, max_len=4, min_len=1, n_docs=None):
    """A padded batch of docs of different lengths, BIO tags for 2-3 labels (5-7 tags), random
    emissions/transitions/start/end (plus the hard BIO constraints when ``constrained``)."""
    rng = numpy.random.RandomState(seed)
    labels = ["PER", "LOC", "ORG"][: rng.randint(2, 4)]
    tags = bio_tags(labels)
    n_tags = len(tags)
    n_docs = n_docs or rng.randint(2, 5)
    lengths = rng.randint(min_len, max_len + 1, size=n_docs)
    lengths[0] = max_len  # at least one doc is longer than another most of the time
    flat = rng.normal(scale=2.0, size=(int(lengths.sum()), n_tags))
    emissions = pad_scores(flat, lengths)
    # junk in the padding must never matter
    mask = numpy.arange(emissions.shape[1])[None, :] < lengths[:, None]
    emissions[~mask] = rng.normal(scale=50.0, size=emissions[~mask].shape)
    trans = rng.normal(size=(n_tags, n_tags))
    start = rng.normal(size=n_tags)
    end = rng.normal(size=n_tags)
    if constrained:
        hard_trans, hard_start = bio_constraints(tags)
        trans = trans + hard_trans
        start = start + hard_start
    return tags, lengths, emissions, trans, start, end


def docs_of(emissions, lengths):
    return [emissions[i, :n] for i, n in enumerate(lengths)]


def is_valid_bio(tags, path):
    prev = "O"
    for i, tag_id in enumerate(path):
        tag = tags[tag_id]
        if tag.startswith("I-"):
            if i == 0 or prev[2:] != tag[2:] or prev == "O":
                return False
        prev = tag
    return True


# -- tags and constraints -----------------------------------------------------------------------


def test_bio_tags_and_constraints():
    tags = bio_tags(["PER", "LOC"])
    assert tags == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    trans, start = bio_constraints(tags)
    ok = {(p, c) for p in tags for c in tags if not c.startswith("I-") or p[2:] == c[2:] and p != "O"}
    for i, p in enumerate(tags):
        for j, c in enumerate(tags):
            assert (trans[i, j] == 0) == ((p, c) in ok), (p, c)
    assert [s == 0 for s in start] == [not t.startswith("I-") for t in tags]


def test_is_valid_bio_helper():
    tags = bio_tags(["PER", "LOC"])
    assert is_valid_bio(tags, [0, 1, 2, 2, 0, 3, 4])
    assert not is_valid_bio(tags, [2])
    assert not is_valid_bio(tags, [0, 2])
    assert not is_valid_bio(tags, [1, 4])


# -- Viterbi -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("with_end", [True, False])
def test_viterbi_equals_brute_force(seed, with_end):
    tags, lengths, emissions, trans, start, end = random_problem(seed, constrained=seed % 2 == 0)
    end = end if with_end else None
    paths = viterbi(emissions, lengths, trans, start, end)
    assert paths.shape == emissions.shape[:2]
    for i, (em, n) in enumerate(zip(docs_of(emissions, lengths), lengths)):
        best = brute_best(em, trans, start, end)
        got = tuple(int(x) for x in paths[i, :n])
        assert path_score(em, got, trans, start, end) == pytest.approx(path_score(em, best, trans, start, end))
        assert got == best
        assert (paths[i, n:] == 0).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_viterbi_returns_valid_bio_when_emissions_favour_invalid_tags(seed):
    tags, lengths, emissions, trans, start, end = random_problem(seed, constrained=True)
    i_tags = [j for j, t in enumerate(tags) if t.startswith("I-")]
    rng = numpy.random.RandomState(seed)
    # strongly favour an I- tag everywhere, and O before it on even positions
    emissions = emissions.copy()
    for t in range(emissions.shape[1]):
        if t % 2 == 0:
            emissions[:, t, 0] += 100.0
        else:
            emissions[:, t, rng.choice(i_tags)] += 100.0
    emissions[:, 0, rng.choice(i_tags)] += 200.0
    for e in (end, None):
        paths = viterbi(emissions, lengths, trans, start, e)
        for i, n in enumerate(lengths):
            assert is_valid_bio(tags, paths[i, :n]), [tags[j] for j in paths[i, :n]]


def test_viterbi_invalid_tags_with_zero_transitions():
    """The softmax decoder's case: only the hard constraints, no learned transitions."""
    tags = bio_tags(["PER", "LOC"])
    trans, start = bio_constraints(tags)
    # O, I-LOC, I-PER, B-PER, I-LOC: every I- here is invalid
    wanted = [0, 4, 2, 1, 4]
    em = numpy.full((1, 5, len(tags)), -5.0)
    em[0, numpy.arange(5), wanted] = 5.0
    path = viterbi(em, [5], trans, start)[0]
    assert is_valid_bio(tags, path)
    assert brute_best(em[0], trans, start) == tuple(path)


def test_viterbi_empty_inputs():
    tags = bio_tags(["PER"])
    trans, start = bio_constraints(tags)
    assert viterbi(numpy.zeros((0, 0, 3)), [], trans, start).shape == (0, 0)
    assert viterbi(numpy.zeros((2, 0, 3)), [0, 0], trans, start).shape == (2, 0)
    # an empty doc in a batch with others
    em = numpy.random.RandomState(0).normal(size=(2, 3, 3))
    paths = viterbi(em, [0, 3], trans, start)
    assert (paths[0] == 0).all()
    assert tuple(paths[1]) == brute_best(em[1], trans, start)


# -- forward-backward ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_forward_backward_equals_brute_force(seed):
    tags, lengths, emissions, trans, start, end = random_problem(seed, constrained=seed % 2 == 1)
    log_z, marginals, pair = forward_backward(emissions, lengths, trans, start, end)
    assert log_z.shape == (len(lengths),)
    assert marginals.shape == emissions.shape
    want_pair = numpy.zeros_like(pair)
    for i, (em, n) in enumerate(zip(docs_of(emissions, lengths), lengths)):
        assert log_z[i] == pytest.approx(brute_log_z(em, trans, start, end), abs=1e-8)
        unary, p = brute_marginals(em, trans, start, end)
        want_pair += p
        numpy.testing.assert_allclose(marginals[i, :n], unary, atol=1e-8)
        numpy.testing.assert_allclose(marginals[i, :n].sum(axis=1), 1.0, atol=1e-9)
        assert (marginals[i, n:] == 0).all()
    numpy.testing.assert_allclose(pair, want_pair, atol=1e-8)


def test_forward_backward_with_empty_doc_in_batch():
    tags, lengths, emissions, trans, start, end = random_problem(3, n_docs=2)
    batch = numpy.concatenate([numpy.zeros((1,) + emissions.shape[1:]), emissions])
    log_z, marginals, _ = forward_backward(batch, [0, *lengths], trans, start, end)
    log_z2, marginals2, _ = forward_backward(emissions, lengths, trans, start, end)
    numpy.testing.assert_allclose(log_z[1:], log_z2)
    numpy.testing.assert_allclose(marginals[1:], marginals2)
    assert (marginals[0] == 0).all()


def test_forward_backward_constrained_marginals_are_zero_for_invalid_tags():
    tags, lengths, emissions, trans, start, end = random_problem(5, constrained=True)
    _, marginals, _ = forward_backward(emissions, lengths, trans, start, end)
    for j, tag in enumerate(tags):
        if tag.startswith("I-"):
            assert (marginals[:, 0, j] < 1e-100).all()


# -- CRF loss ----------------------------------------------------------------------------------------


def random_gold(rng, tags, lengths, max_len, unknown=0.0):
    """Valid BIO gold paths, padded with -1; a fraction ``unknown`` of real positions set to -1."""
    gold = numpy.full((len(lengths), max_len), -1, dtype="int64")
    labels = sorted({t[2:] for t in tags if t != "O"})
    for i, n in enumerate(lengths):
        prev = "O"
        for t in range(n):
            choices = ["O"] + [f"B-{lab}" for lab in labels]
            if prev != "O":
                choices.append("I-" + prev[2:])
            prev = choices[rng.randint(len(choices))]
            gold[i, t] = tags.index(prev)
    if unknown:
        real = numpy.arange(max_len)[None, :] < numpy.asarray(lengths)[:, None]
        drop = (rng.uniform(size=gold.shape) < unknown) & real
        gold[drop] = -1
    return gold


@pytest.mark.parametrize("seed", SEEDS)
def test_crf_loss_equals_brute_force_nll(seed):
    rng = numpy.random.RandomState(100 + seed)
    tags, lengths, emissions, trans, start, end = random_problem(seed, constrained=seed % 2 == 0)
    gold = random_gold(rng, tags, lengths, emissions.shape[1])
    loss, d_em, d_trans, d_start, d_end = crf_loss(emissions, lengths, gold, trans, start, end)
    want = 0.0
    for i, (em, n) in enumerate(zip(docs_of(emissions, lengths), lengths)):
        want += brute_log_z(em, trans, start, end) - path_score(em, tuple(gold[i, :n]), trans, start, end)
    assert loss == pytest.approx(want, rel=1e-9, abs=1e-8)
    assert loss >= 0
    assert d_em.shape == emissions.shape
    assert d_trans.shape == trans.shape and d_start.shape == start.shape and d_end.shape == end.shape
    mask = numpy.arange(emissions.shape[1])[None, :] < lengths[:, None]
    assert (d_em[~mask] == 0).all()


@pytest.mark.parametrize("seed", SEEDS[:6])
def test_crf_loss_marginalises_unknown_gold(seed):
    rng = numpy.random.RandomState(200 + seed)
    tags, lengths, emissions, trans, start, end = random_problem(seed, constrained=seed % 2 == 1)
    gold = random_gold(rng, tags, lengths, emissions.shape[1], unknown=0.5)
    gold[0, 0] = -1  # at least one unknown
    loss = crf_loss(emissions, lengths, gold, trans, start, end)[0]
    want = 0.0
    for i, (em, n) in enumerate(zip(docs_of(emissions, lengths), lengths)):
        want += brute_log_z(em, trans, start, end) - brute_log_z(em, trans, start, end, gold=gold[i, :n])
    assert loss == pytest.approx(want, rel=1e-7, abs=1e-7)


def test_crf_loss_all_unknown_is_zero():
    tags, lengths, emissions, trans, start, end = random_problem(1)
    gold = numpy.full(emissions.shape[:2], -1, dtype="int64")
    loss, d_em, d_trans, d_start, d_end = crf_loss(emissions, lengths, gold, trans, start, end)
    assert loss == pytest.approx(0.0, abs=1e-9)
    for d in (d_em, d_trans, d_start, d_end):
        numpy.testing.assert_allclose(d, 0.0, atol=1e-9)


def _numeric_grad(f, x, eps=1e-5, where=None):
    grad = numpy.zeros_like(x)
    it = numpy.ndindex(*x.shape)
    for idx in it:
        if where is not None and not where[idx]:
            continue
        old = x[idx]
        x[idx] = old + eps
        hi = f()
        x[idx] = old - eps
        lo = f()
        x[idx] = old
        grad[idx] = (hi - lo) / (2 * eps)
    return grad


@pytest.mark.parametrize("seed", SEEDS[:6])
@pytest.mark.parametrize("unknown", [0.0, 0.4])
def test_crf_loss_gradients_match_finite_differences(seed, unknown):
    rng = numpy.random.RandomState(300 + seed)
    tags, lengths, emissions, trans, start, end = random_problem(seed, constrained=seed % 2 == 0, max_len=3)
    emissions[:, :, :] = numpy.where(
        numpy.arange(emissions.shape[1])[None, :, None] < lengths[:, None, None], emissions, 0.0
    )
    gold = random_gold(rng, tags, lengths, emissions.shape[1], unknown=unknown)
    _, d_em, d_trans, d_start, d_end = crf_loss(emissions, lengths, gold, trans, start, end)

    def f():
        return crf_loss(emissions, lengths, gold, trans, start, end)[0]

    mask = numpy.arange(emissions.shape[1])[None, :] < lengths[:, None]
    where = numpy.broadcast_to(mask[:, :, None], emissions.shape)
    numpy.testing.assert_allclose(d_em, _numeric_grad(f, emissions, where=where), atol=1e-5)
    numpy.testing.assert_allclose(d_trans, _numeric_grad(f, trans), atol=1e-5)
    numpy.testing.assert_allclose(d_start, _numeric_grad(f, start), atol=1e-5)
    numpy.testing.assert_allclose(d_end, _numeric_grad(f, end), atol=1e-5)


def test_forbidden_constant_is_large_negative():
    assert FORBIDDEN <= -1e3
