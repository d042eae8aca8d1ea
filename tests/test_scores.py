"""What the decoders output (spacy_twitter_ner.models.scores): CRFScores and TagScores own their
loss (gold ids or soft targets, with gradients of the same type) and their decoding. Checked
against brute-force enumeration of every tag path, finite differences and torch's own
cross-entropy."""
import numpy
import pytest
import torch
from thinc.api import NumpyOps, Ragged

from spacy_twitter_ner.models import scores as scores_module
from spacy_twitter_ner.models.bio import FORBIDDEN, bio_constraints, bio_tags
from spacy_twitter_ner.models.scores import CRFScores, TagScores

import crf_brute_force as brute_force
from crf_brute_force import all_paths, brute_best, brute_log_z, logsumexp, path_score  # noqa: F401

OPS = NumpyOps()
SEEDS = list(range(8))


# -- brute force (tests/crf_brute_force.py) ------------------------------------------------------


def brute_marginals(em, trans, start, end):
    return brute_force.brute_marginals(em, trans, start, end)[0]


def log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - numpy.log(numpy.exp(x).sum(axis=-1, keepdims=True))


# -- problems --------------------------------------------------------------------------------------


class Problem:
    """Random CRF scores for a batch: flat emissions (tokens, tags), doc lengths, learned
    transition/start/end scores (the hard BIO constraints are added by CRFScores itself)."""

    def __init__(self, seed, max_len=4, n_docs=None, lengths=None, dtype="float64", n_labels=None):
        rng = numpy.random.RandomState(seed)
        self.tags = bio_tags(["PER", "LOC", "ORG"][: n_labels or rng.randint(2, 4)])
        n_tags = len(self.tags)
        if lengths is None:
            lengths = rng.randint(1, max_len + 1, size=n_docs or rng.randint(2, 5))
            lengths[0] = max_len
        self.lengths = numpy.asarray(lengths, dtype="int32")
        self.flat = rng.normal(scale=2.0, size=(int(self.lengths.sum()), n_tags)).astype(dtype)
        self.trans = rng.normal(size=(n_tags, n_tags)).astype(dtype)
        self.start = rng.normal(size=n_tags).astype(dtype)
        self.end = rng.normal(size=n_tags).astype(dtype)
        hard_trans, hard_start = bio_constraints(n_tags)
        # what the brute force sees: learned + hard, in float64
        self.full_trans = self.trans.astype("float64") + hard_trans
        self.full_start = self.start.astype("float64") + hard_start
        self.offsets = numpy.concatenate([[0], numpy.cumsum(self.lengths)])

    def crf(self):
        return CRFScores(OPS, Ragged(self.flat, self.lengths), self.trans, self.start, self.end)

    def softmax(self):
        return TagScores(OPS, Ragged(self.flat, self.lengths))

    def docs(self, flat=None):
        flat = self.flat if flat is None else flat
        return [flat[a:b].astype("float64") for a, b in zip(self.offsets[:-1], self.offsets[1:])]

    def valid_gold(self, rng, unknown=0.0):
        """Valid BIO gold tag ids (flat), a fraction ``unknown`` set to -1."""
        labels = sorted({t[2:] for t in self.tags if t != "O"})
        out = []
        for n in self.lengths:
            prev = "O"
            for _ in range(n):
                choices = ["O"] + [f"B-{lab}" for lab in labels] + ([f"I-{prev[2:]}"] if prev != "O" else [])
                prev = choices[rng.randint(len(choices))]
                out.append(self.tags.index(prev))
        gold = numpy.asarray(out, dtype="int64")
        if unknown:
            gold[rng.uniform(size=len(gold)) < unknown] = -1
        return gold

    def brute_crf_nll(self, gold):
        total = 0.0
        for i, em in enumerate(self.docs()):
            g = gold[self.offsets[i]:self.offsets[i + 1]]
            total += brute_log_z(em, self.full_trans, self.full_start, self.end) - \
                brute_log_z(em, self.full_trans, self.full_start, self.end, gold=g)
        return total

    def brute_crf_marginals(self):
        return numpy.concatenate([brute_marginals(em, self.full_trans, self.full_start, self.end) for em in self.docs()])


def numeric_grad(f, x, eps=1e-6):
    grad = numpy.zeros_like(x)
    for idx in numpy.ndindex(*x.shape):
        old = x[idx]
        x[idx] = old + eps
        hi = f()
        x[idx] = old - eps
        lo = f()
        x[idx] = old
        grad[idx] = (hi - lo) / (2 * eps)
    return grad


# -- CRFScores.loss with gold tag ids ------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_crf_loss_is_the_brute_force_nll_per_known_token(seed):
    p = Problem(seed)
    gold = p.valid_gold(numpy.random.RandomState(100 + seed))
    loss, d = p.crf().loss(gold)
    assert isinstance(loss, float) and loss >= 0
    assert loss == pytest.approx(p.brute_crf_nll(gold) / len(gold), rel=1e-9, abs=1e-9)
    assert isinstance(d, CRFScores)
    assert d.emissions.data.shape == p.flat.shape
    numpy.testing.assert_array_equal(d.emissions.lengths, p.lengths)
    assert d.transitions.shape == p.trans.shape and d.start.shape == p.start.shape and d.end.shape == p.end.shape


@pytest.mark.parametrize("seed", SEEDS)
def test_crf_loss_marginalises_unknown_gold(seed):
    p = Problem(seed)
    gold = p.valid_gold(numpy.random.RandomState(200 + seed), unknown=0.5)
    gold[0] = -1  # at least one unknown
    n_known = int((gold >= 0).sum())
    loss, _ = p.crf().loss(gold)
    assert loss == pytest.approx(p.brute_crf_nll(gold) / max(1, n_known), rel=1e-8, abs=1e-8)


def test_crf_loss_all_unknown_is_zero_with_zero_gradients():
    p = Problem(1)
    loss, d = p.crf().loss(numpy.full(len(p.flat), -1, dtype="int64"))
    assert loss == pytest.approx(0.0, abs=1e-9)
    for grad in (d.emissions.data, d.transitions, d.start, d.end):
        numpy.testing.assert_allclose(grad, 0.0, atol=1e-9)


def test_crf_loss_with_an_empty_doc_in_the_batch():
    p = Problem(2, lengths=[3, 2])
    gold = p.valid_gold(numpy.random.RandomState(0))
    with_empty = CRFScores(OPS, Ragged(p.flat, numpy.asarray([3, 0, 2], dtype="int32")), p.trans, p.start, p.end)
    loss_a, d_a = p.crf().loss(gold)
    loss_b, d_b = with_empty.loss(gold)
    assert loss_a == pytest.approx(loss_b, rel=1e-12)
    numpy.testing.assert_allclose(d_a.emissions.data, d_b.emissions.data, atol=1e-12)
    numpy.testing.assert_allclose(d_a.transitions, d_b.transitions, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS[:5])
@pytest.mark.parametrize("unknown", [0.0, 0.4])
def test_crf_loss_gradients_match_finite_differences(seed, unknown):
    p = Problem(seed, max_len=3)
    gold = p.valid_gold(numpy.random.RandomState(300 + seed), unknown=unknown)
    _, d = p.crf().loss(gold)

    def f():
        return p.crf().loss(gold)[0]

    numpy.testing.assert_allclose(d.emissions.data, numeric_grad(f, p.flat), atol=1e-6)
    numpy.testing.assert_allclose(d.transitions, numeric_grad(f, p.trans), atol=1e-6)
    numpy.testing.assert_allclose(d.start, numeric_grad(f, p.start), atol=1e-6)
    numpy.testing.assert_allclose(d.end, numeric_grad(f, p.end), atol=1e-6)
    assert numpy.abs(d.transitions).sum() > 0 and numpy.abs(d.end).sum() > 0


def test_crf_loss_gradient_is_the_crf_layer_backprop_input():
    """The decoder's backprop takes what loss returns: gradients for emissions and params."""
    from spacy_twitter_ner.models.crf import crf_forward, init_crf
    from thinc.api import Model

    p = Problem(3, dtype="float32")
    layer = Model("crf", crf_forward, init=init_crf, dims={"nO": len(p.tags)}, params={"transitions": None, "start": None, "end": None})
    layer.initialize()
    for name, value in (("transitions", p.trans), ("start", p.start), ("end", p.end)):
        layer.set_param(name, value)
    out, backprop = layer.begin_update(Ragged(p.flat, p.lengths))
    assert isinstance(out, CRFScores)
    loss, d = out.loss(p.valid_gold(numpy.random.RandomState(3)))
    dX = backprop(d)
    numpy.testing.assert_array_equal(dX.data, d.emissions.data)
    for name in ("transitions", "start", "end"):
        numpy.testing.assert_allclose(layer.get_grad(name), getattr(d, name))


# -- CRFScores.loss with soft targets ---------------------------------------------------------------


def random_targets(rng, n_tokens, n_tags, zero_rows=()):
    target = rng.dirichlet(numpy.ones(n_tags), size=n_tokens)
    target[list(zero_rows)] = 0.0  # unknown: rows of zeros
    return target.astype("float32")


@pytest.mark.parametrize("seed", SEEDS[:5])
def test_crf_soft_target_loss_is_cross_entropy_against_brute_force_marginals(seed):
    """Targets on the tags the constraints allow (a target on a forbidden tag costs about
    -FORBIDDEN, where brute force says infinity); a row of zeros is an unknown token."""
    p = Problem(seed)
    marg = p.brute_crf_marginals()
    rng = numpy.random.RandomState(500 + seed)
    target = rng.uniform(size=marg.shape) * (marg > 1e-6)
    target = target / target.sum(axis=1, keepdims=True)
    target[1] = 0.0
    target = target.astype("float32")
    loss, d = p.crf().loss(target)
    assert isinstance(d, CRFScores)
    log_marg = numpy.log(numpy.maximum(marg, 1e-300))
    want = -(target.astype("float64") * log_marg).sum() / (len(p.flat) - 1)
    assert loss == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("seed", SEEDS[:5])
def test_crf_soft_target_gradient_vanishes_at_the_models_own_marginals(seed):
    """Cross-entropy against the model's own marginals is stationary: a teacher that is the
    student gives no gradient. Other targets do."""
    p = Problem(seed, max_len=3)
    own = p.brute_crf_marginals().astype("float32")
    _, d = p.crf().loss(own)
    numpy.testing.assert_allclose(d.emissions.data, 0.0, atol=2e-6)
    numpy.testing.assert_allclose(d.transitions, 0.0, atol=2e-6)
    numpy.testing.assert_allclose(d.start, 0.0, atol=2e-6)
    numpy.testing.assert_allclose(d.end, 0.0, atol=2e-6)
    other = numpy.roll(own, 1, axis=0)
    _, d_other = p.crf().loss(other)
    assert numpy.abs(d_other.emissions.data).max() > 1e-3


def test_crf_soft_target_gradients_match_finite_differences():
    p = Problem(4, max_len=3)
    marg = p.brute_crf_marginals()
    rng = numpy.random.RandomState(4)
    target = rng.uniform(size=marg.shape) * (marg > 1e-6)
    target = (target / target.sum(axis=1, keepdims=True)).astype("float32")
    _, d = p.crf().loss(target)

    def f():
        return p.crf().loss(target)[0]

    numpy.testing.assert_allclose(d.emissions.data, numeric_grad(f, p.flat), atol=1e-6)
    numpy.testing.assert_allclose(d.transitions, numeric_grad(f, p.trans), atol=1e-6)
    numpy.testing.assert_allclose(d.end, numeric_grad(f, p.end), atol=1e-6)


# -- CRFScores.decode -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_crf_decode_is_brute_force_viterbi_and_marginals(seed):
    p = Problem(seed, dtype="float32")
    paths, probs = p.crf().decode()
    assert len(paths) == len(probs) == len(p.lengths)
    for i, em in enumerate(p.docs()):
        want = brute_best(em, p.full_trans, p.full_start, p.end.astype("float64"))
        assert tuple(int(x) for x in paths[i]) == want
        marg = brute_marginals(em, p.full_trans, p.full_start, p.end.astype("float64"))
        assert probs[i].shape == (len(em), len(p.tags))
        numpy.testing.assert_allclose(probs[i], marg, atol=1e-5)


def test_crf_decode_many_docs_of_mixed_lengths_and_empty_docs():
    """More docs than one decoding chunk, in no length order, with empty docs among them."""
    rng = numpy.random.RandomState(9)
    lengths = rng.randint(0, 5, size=scores_module.DECODE_CHUNK + 9)
    lengths[[0, 7, -1]] = 0
    p = Problem(9, lengths=lengths, dtype="float32", n_labels=2)
    paths, probs = p.crf().decode()
    assert [len(x) for x in paths] == lengths.tolist()
    assert [x.shape for x in probs] == [(n, len(p.tags)) for n in lengths]
    for i, em in enumerate(p.docs()):
        if len(em):
            assert tuple(int(x) for x in paths[i]) == brute_best(em, p.full_trans, p.full_start, p.end.astype("float64"))
            numpy.testing.assert_allclose(probs[i], brute_marginals(em, p.full_trans, p.full_start, p.end.astype("float64")), atol=1e-5)


def test_crf_decode_outside_forces_o():
    p = Problem(5, lengths=[4, 3, 4], dtype="float32")
    O = p.tags.index("O")
    # make every token want an entity tag, then force some to be outside
    flat = p.flat.copy()
    flat[:, O] -= 10.0
    p.flat = flat
    outside = numpy.zeros(len(flat), dtype=bool)
    outside[[1, 4, 7, 10]] = True
    paths, probs = p.crf().decode(outside=outside)
    got = numpy.concatenate(paths)
    assert (got[outside] == O).all()
    numpy.testing.assert_allclose(numpy.concatenate(probs)[outside, O], 1.0, atol=1e-6)
    assert (got[~outside] != O).any()
    # the rest of each path is the best one under that restriction
    restricted = flat.astype("float64").copy()
    restricted[outside, 1:] = FORBIDDEN
    for i, em in enumerate(p.docs(restricted)):
        assert tuple(int(x) for x in paths[i]) == brute_best(em, p.full_trans, p.full_start, p.end.astype("float64"))
    # without outside, those tokens are not O
    free = numpy.concatenate(p.crf().decode()[0])
    assert (free[outside] != O).any()


def test_crf_decode_all_empty():
    p = Problem(1, lengths=[2])
    scores = CRFScores(OPS, Ragged(OPS.alloc2f(0, len(p.tags)), numpy.asarray([0, 0], dtype="int32")), p.trans, p.start, p.end)
    assert scores.n_tags == len(p.tags)  # thinc keeps empty Ragged data as (0, 0)
    paths, probs = scores.decode(outside=numpy.zeros(0, dtype=bool))
    assert [len(x) for x in paths] == [0, 0]
    assert [x.shape for x in probs] == [(0, len(p.tags))] * 2
    # an ensemble of such scores too
    mean = CRFScores.mean([scores, scores])
    assert mean.n_tags == len(p.tags)
    assert [x.shape for x in mean.decode()[1]] == [(0, len(p.tags))] * 2


# -- TagScores (softmax) -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS[:5])
def test_softmax_loss_is_torch_cross_entropy(seed):
    p = Problem(seed)
    gold = p.valid_gold(numpy.random.RandomState(600 + seed), unknown=0.3)
    gold[0] = 1
    loss, d = p.softmax().loss(gold)
    assert type(d) is TagScores
    x = torch.tensor(p.flat, requires_grad=True)
    want = torch.nn.functional.cross_entropy(x, torch.tensor(gold), ignore_index=-1, reduction="mean")
    want.backward()
    assert loss == pytest.approx(float(want.detach()), rel=1e-10)
    numpy.testing.assert_allclose(d.emissions.data, x.grad.numpy(), atol=1e-12)
    numpy.testing.assert_array_equal(d.emissions.lengths, p.lengths)


def test_softmax_soft_target_loss_is_cross_entropy():
    p = Problem(2)
    target = random_targets(numpy.random.RandomState(2), len(p.flat), len(p.tags), zero_rows=[0, 3])
    loss, d = p.softmax().loss(target)
    want = -(target * log_softmax(p.flat)).sum() / (len(p.flat) - 2)
    assert loss == pytest.approx(want, rel=1e-6)
    assert (d.emissions.data[[0, 3]] == 0).all()


@pytest.mark.parametrize("seed", SEEDS[:5])
def test_softmax_decode_is_constrained_viterbi_over_log_probabilities(seed):
    p = Problem(seed, dtype="float32")
    paths, probs = p.softmax().decode()
    hard_trans, hard_start = bio_constraints(len(p.tags))
    for i, em in enumerate(p.docs()):
        logp = log_softmax(em)
        assert tuple(int(x) for x in paths[i]) == brute_best(logp, hard_trans.astype("float64"), hard_start.astype("float64"))
        numpy.testing.assert_allclose(probs[i], numpy.exp(logp), atol=1e-6)


def test_softmax_decode_outside_forces_o():
    p = Problem(3, lengths=[3, 3], dtype="float32")
    p.flat[:, 0] -= 10.0
    outside = numpy.array([True, False, False, False, True, False])
    paths, probs = p.softmax().decode(outside=outside)
    got = numpy.concatenate(paths)
    assert (got[outside] == 0).all() and (got[~outside] != 0).all()
    numpy.testing.assert_allclose(numpy.concatenate(probs)[outside, 0], 1.0, atol=1e-6)


# -- ensembles: mean ----------------------------------------------------------------------------------


def test_crf_mean_averages_emissions_and_params():
    a, b, c = (Problem(s, lengths=[3, 1, 2], n_labels=2) for s in (1, 2, 3))
    mean = CRFScores.mean([a.crf(), b.crf(), c.crf()])
    assert type(mean) is CRFScores
    numpy.testing.assert_allclose(mean.emissions.data, (a.flat + b.flat + c.flat) / 3, rtol=1e-6, atol=1e-7)  # float32
    numpy.testing.assert_array_equal(mean.emissions.lengths, a.lengths)
    for name in ("trans", "start", "end"):
        attr = {"trans": "transitions"}.get(name, name)
        want = (getattr(a, name) + getattr(b, name) + getattr(c, name)) / 3
        numpy.testing.assert_allclose(getattr(mean, attr), want, rtol=1e-12)
    # and it decodes like a CRF with those scores
    m = Problem(1, lengths=[3, 1, 2], n_labels=2)
    m.flat, m.trans, m.start, m.end = mean.emissions.data, mean.transitions, mean.start, mean.end
    hard_trans, hard_start = bio_constraints(len(m.tags))
    paths, _ = mean.decode()
    for i, em in enumerate(m.docs()):
        assert tuple(int(x) for x in paths[i]) == brute_best(em, m.trans + hard_trans, m.start + hard_start, m.end)


def test_tag_scores_mean():
    a, b = Problem(1, lengths=[2, 2], n_labels=2), Problem(2, lengths=[2, 2], n_labels=2)
    mean = TagScores.mean([a.softmax(), b.softmax()])
    assert type(mean) is TagScores
    numpy.testing.assert_allclose(mean.emissions.data, (a.flat + b.flat) / 2)


def test_crf_decode_marginals_of_a_long_doc_are_probabilities():
    """The forward-backward sums grow with the length of a doc: a 3,000-token doc (e.g. a
    pasted text) still gets marginals that sum to 1 (in float32 they drift by more than 1)."""
    p = Problem(11, lengths=[3000, 4], dtype="float32", n_labels=2)
    p.flat += 5.0  # large scores, as a trained model's
    paths, probs = p.crf().decode()
    numpy.testing.assert_allclose(probs[0].sum(axis=1), 1.0, atol=1e-6)
    assert probs[0].max() <= 1.0 + 1e-6 and probs[0].min() >= 0.0
    em = p.docs()[1]  # the short doc decoded beside it
    numpy.testing.assert_allclose(probs[1], brute_marginals(em, p.full_trans, p.full_start, p.end.astype("float64")), atol=1e-6)
    assert tuple(int(x) for x in paths[1]) == brute_best(em, p.full_trans, p.full_start, p.end.astype("float64"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_crf_decode_outside_bias_is_viterbi_with_a_lower_o_score(seed):
    """The bias moves only the path: it is the brute-force best path of emissions whose O
    column is lowered by the bias; the probabilities stay the unbiased marginals."""
    p = Problem(seed, dtype="float32")
    bias = 1.5
    paths, probs = p.crf().decode(outside_bias=bias)
    _, probs_0 = p.crf().decode()
    for i, em in enumerate(p.docs()):
        shifted = em.astype("float64").copy()
        shifted[:, 0] -= bias
        assert tuple(int(x) for x in paths[i]) == brute_best(shifted, p.full_trans, p.full_start, p.end.astype("float64"))
        numpy.testing.assert_allclose(probs[i], probs_0[i])


@pytest.mark.parametrize("kind", ["crf", "softmax"])
def test_decode_outside_bias_moves_tags_monotonically(kind):
    """More bias: at least as many non-O tags; a huge one tags every token, a hugely negative one none."""
    p = Problem(3, lengths=[5, 4, 6, 3], dtype="float32")
    scores = getattr(p, kind)
    counts = [sum(int((path > 0).sum()) for path in scores().decode(outside_bias=b)[0]) for b in (-50.0, 0.0, 50.0)]
    assert counts[0] == 0
    assert counts[2] == sum(p.lengths)
    assert counts[0] <= counts[1] <= counts[2]
