"""The linear-chain CRF maths in torch (spacy_twitter_ner.models.torch_crf) against brute-force
enumeration of every tag path: log partition, log marginals, Viterbi, and the gradients autograd
gives (expected counts, finite differences), on padded batches with junk in the padding."""
import numpy
import pytest
import torch

from spacy_twitter_ner.models.bio import FORBIDDEN, bio_constraints, bio_tags
from spacy_twitter_ner.models.torch_crf import log_marginals, log_partition, viterbi

from crf_brute_force import all_paths, brute_best, brute_log_z, brute_marginals, logsumexp, path_score  # noqa: F401

SEEDS = list(range(12))


# -- random problems ---------------------------------------------------------------------------


def random_problem(seed, constrained=True, max_len=4, min_len=1, n_docs=None):
    """A padded batch (numpy float64) of docs of different lengths, BIO tags for 2-3 labels
    (5-7 tags), random emissions/transitions/start/end (plus the hard BIO constraints when
    ``constrained``); junk of a large scale in the padding."""
    rng = numpy.random.RandomState(seed)
    labels = ["PER", "LOC", "ORG"][: rng.randint(2, 4)]
    tags = bio_tags(labels)
    n_tags = len(tags)
    n_docs = n_docs or rng.randint(2, 5)
    lengths = rng.randint(min_len, max_len + 1, size=n_docs)
    lengths[0] = max_len
    emissions = rng.normal(scale=2.0, size=(n_docs, max_len, n_tags))
    mask = numpy.arange(max_len)[None, :] < lengths[:, None]
    emissions[~mask] = rng.normal(scale=50.0, size=emissions[~mask].shape)  # must never matter
    trans = rng.normal(size=(n_tags, n_tags))
    start = rng.normal(size=n_tags)
    end = rng.normal(size=n_tags)
    if constrained:
        hard_trans, hard_start = bio_constraints(n_tags)
        trans = trans + hard_trans
        start = start + hard_start
    return tags, lengths, emissions, mask, trans, start, end


def T(array, requires_grad=False):
    return torch.tensor(numpy.asarray(array), dtype=torch.float64, requires_grad=requires_grad)


def M(mask):
    return torch.tensor(numpy.asarray(mask), dtype=torch.bool)


def is_valid_bio(tags, path):
    prev = "O"
    for i, tag_id in enumerate(path):
        tag = tags[int(tag_id)]
        if tag.startswith("I-") and (i == 0 or prev == "O" or prev[2:] != tag[2:]):
            return False
        prev = tag
    return True


def test_is_valid_bio_helper():
    tags = bio_tags(["PER", "LOC"])
    assert is_valid_bio(tags, [0, 1, 2, 2, 0, 3, 4])
    assert not is_valid_bio(tags, [2])
    assert not is_valid_bio(tags, [0, 2])
    assert not is_valid_bio(tags, [1, 4])


# -- log partition -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("with_end", [True, False])
def test_log_partition_equals_brute_force(seed, with_end):
    tags, lengths, em, mask, trans, start, end = random_problem(seed, constrained=seed % 2 == 0)
    end = end if with_end else numpy.zeros_like(end)
    got = log_partition(T(em), M(mask), T(trans), T(start), T(end))
    assert got.shape == (len(lengths),)
    for i, n in enumerate(lengths):
        assert float(got[i]) == pytest.approx(brute_log_z(em[i, :n], trans, start, end), rel=1e-10, abs=1e-9)


@pytest.mark.parametrize("seed", SEEDS[:6])
def test_log_partition_gradients_are_the_expected_counts(seed):
    """d log Z / d emissions = unary marginals, / d transitions = pair marginals (summed over
    steps and docs), / d start = first-step marginals, / d end = last-step marginals; nothing
    flows into the padding."""
    tags, lengths, em, mask, trans, start, end = random_problem(seed, constrained=seed % 2 == 1)
    tensors = [T(a, requires_grad=True) for a in (em, trans, start, end)]
    log_partition(tensors[0], M(mask), *tensors[1:]).sum().backward()
    d_em, d_trans, d_start, d_end = (t.grad.numpy() for t in tensors)
    want_pair, want_first, want_last = numpy.zeros_like(trans), numpy.zeros_like(start), numpy.zeros_like(end)
    for i, n in enumerate(lengths):
        unary, pair, first, last = brute_marginals(em[i, :n], trans, start, end)
        numpy.testing.assert_allclose(d_em[i, :n], unary, atol=1e-9)
        want_pair += pair
        want_first += first
        want_last += last
    assert (d_em[~mask] == 0).all()
    numpy.testing.assert_allclose(d_trans, want_pair, atol=1e-9)
    numpy.testing.assert_allclose(d_start, want_first, atol=1e-9)
    numpy.testing.assert_allclose(d_end, want_last, atol=1e-9)


def test_log_partition_with_empty_doc_in_batch():
    tags, lengths, em, mask, trans, start, end = random_problem(3, n_docs=2)
    batch = numpy.concatenate([numpy.random.RandomState(1).normal(size=(1,) + em.shape[1:]), em])
    batch_mask = numpy.concatenate([numpy.zeros((1, mask.shape[1]), bool), mask])
    got = log_partition(T(batch), M(batch_mask), T(trans), T(start), T(end))
    alone = log_partition(T(em), M(mask), T(trans), T(start), T(end))
    assert float(got[0]) == 0.0  # a doc without tokens
    numpy.testing.assert_allclose(got[1:].numpy(), alone.numpy(), rtol=1e-12)


def test_log_partition_of_batches_without_steps_or_docs():
    trans, start = (torch.from_numpy(a).double() for a in bio_constraints(3))
    end = torch.zeros(3, dtype=torch.float64)
    got = log_partition(torch.zeros((2, 0, 3), dtype=torch.float64), torch.zeros((2, 0), dtype=torch.bool), trans, start, end)
    assert got.shape == (2,) and (got == 0).all()
    got = log_partition(torch.zeros((0, 0, 3), dtype=torch.float64), torch.zeros((0, 0), dtype=torch.bool), trans, start, end)
    assert got.shape == (0,)


@pytest.mark.parametrize("seed", SEEDS[:4])
def test_log_partition_restricted_to_gold_equals_brute_force(seed):
    """What the CRF loss uses: the emissions of tags other than the gold one set to FORBIDDEN
    (an unknown gold tag -1 keeps every tag) gives log Z over the paths that agree with gold."""
    rng = numpy.random.RandomState(50 + seed)
    tags, lengths, em, mask, trans, start, end = random_problem(seed, constrained=seed % 2 == 0)
    gold = rng.randint(-1, len(tags), size=mask.shape)
    keep = (gold[:, :, None] < 0) | (gold[:, :, None] == numpy.arange(len(tags)))
    restricted = numpy.where(keep, em, FORBIDDEN)
    got = log_partition(T(restricted), M(mask), T(trans), T(start), T(end))
    checked = 0
    for i, n in enumerate(lengths):
        want = brute_log_z(em[i, :n], trans, start, end, gold=gold[i, :n])
        if want > FORBIDDEN / 2:  # some gold path the constraints allow
            assert float(got[i]) == pytest.approx(want, rel=1e-9, abs=1e-8)
            checked += 1
    assert checked


# -- log marginals -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("with_end", [True, False])
def test_log_marginals_equal_brute_force(seed, with_end):
    tags, lengths, em, mask, trans, start, end = random_problem(seed, constrained=seed % 2 == 1)
    end = end if with_end else numpy.zeros_like(end)
    got = log_marginals(T(em), M(mask), T(trans), T(start), T(end))
    assert got.shape == em.shape
    probs = got.exp().numpy()
    for i, n in enumerate(lengths):
        unary = brute_marginals(em[i, :n], trans, start, end)[0]
        numpy.testing.assert_allclose(probs[i, :n], unary, atol=1e-9)
        numpy.testing.assert_allclose(probs[i, :n].sum(axis=1), 1.0, atol=1e-9)
    assert (got.numpy()[~mask] == 0).all()  # padded steps are 0 (log space)


def test_log_marginals_constrained_first_step_never_inside():
    tags, lengths, em, mask, trans, start, end = random_problem(5, constrained=True)
    probs = log_marginals(T(em), M(mask), T(trans), T(start), T(end)).exp().numpy()
    for j, tag in enumerate(tags):
        if tag.startswith("I-"):
            assert (probs[:, 0, j] < 1e-100).all()


def test_log_marginals_with_empty_doc_in_batch():
    tags, lengths, em, mask, trans, start, end = random_problem(4, n_docs=3)
    batch = numpy.concatenate([em[:1], numpy.full((1,) + em.shape[1:], 7.0), em[1:]])
    batch_mask = numpy.concatenate([mask[:1], numpy.zeros((1, mask.shape[1]), bool), mask[1:]])
    got = log_marginals(T(batch), M(batch_mask), T(trans), T(start), T(end)).numpy()
    alone = log_marginals(T(em), M(mask), T(trans), T(start), T(end)).numpy()
    assert (got[1] == 0).all()
    numpy.testing.assert_allclose(got[[0, 2, 3]], alone, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS[:4])
def test_log_marginals_gradients_match_finite_differences(seed):
    """Soft-target training differentiates through the marginals: autograd against finite
    differences (torch.autograd.gradcheck, float64) for every input."""
    tags, lengths, em, mask, trans, start, end = random_problem(seed, constrained=False, max_len=3, n_docs=2)
    em = numpy.where(mask[:, :, None], em, 0.0)
    weights = T(numpy.random.RandomState(seed).uniform(size=em.shape))
    inputs = tuple(T(a, requires_grad=True) for a in (em, trans, start, end))

    def f(e, tr, s, en):
        return (log_marginals(e, M(mask), tr, s, en) * weights).sum()

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6)


# -- Viterbi -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("with_end", [True, False])
def test_viterbi_equals_brute_force(seed, with_end):
    tags, lengths, em, mask, trans, start, end = random_problem(seed, constrained=seed % 2 == 0)
    end = end if with_end else None
    paths = viterbi(T(em), M(mask), T(trans), T(start), None if end is None else T(end))
    assert paths.shape == em.shape[:2] and paths.dtype == torch.int64
    paths = paths.numpy()
    for i, n in enumerate(lengths):
        best = brute_best(em[i, :n], trans, start, end)
        got = tuple(int(x) for x in paths[i, :n])
        assert path_score(em[i, :n], got, trans, start, end) == pytest.approx(path_score(em[i, :n], best, trans, start, end))
        assert got == best
        assert (paths[i, n:] == 0).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_viterbi_returns_valid_bio_when_emissions_favour_invalid_tags(seed):
    tags, lengths, em, mask, trans, start, end = random_problem(seed, constrained=True)
    i_tags = [j for j, t in enumerate(tags) if t.startswith("I-")]
    rng = numpy.random.RandomState(seed)
    em = em.copy()
    for t in range(em.shape[1]):
        if t % 2 == 0:
            em[:, t, 0] += 100.0  # O ...
        else:
            em[:, t, rng.choice(i_tags)] += 100.0  # ... then I-X: invalid
    em[:, 0, rng.choice(i_tags)] += 200.0  # an I- first: invalid
    for e in (end, None):
        paths = viterbi(T(em), M(mask), T(trans), T(start), None if e is None else T(e)).numpy()
        for i, n in enumerate(lengths):
            assert is_valid_bio(tags, paths[i, :n]), [tags[j] for j in paths[i, :n]]


def test_viterbi_with_only_the_hard_constraints():
    """The softmax decoder's case: no learned transitions, no end scores."""
    tags = bio_tags(["PER", "LOC"])
    trans, start = bio_constraints(len(tags))
    wanted = [0, 4, 2, 1, 4]  # O, I-LOC, I-PER, B-PER, I-LOC: every I- here is invalid
    em = numpy.full((1, 5, len(tags)), -5.0)
    em[0, numpy.arange(5), wanted] = 5.0
    path = viterbi(T(em), M(numpy.ones((1, 5), bool)), T(trans), T(start)).numpy()[0]
    assert is_valid_bio(tags, path)
    assert tuple(int(x) for x in path) == brute_best(em[0], trans, start)


def test_viterbi_empty_inputs():
    trans, start = (torch.from_numpy(a).double() for a in bio_constraints(3))
    assert viterbi(torch.zeros((0, 0, 3)).double(), torch.zeros((0, 0), dtype=torch.bool), trans, start).shape == (0, 0)
    assert viterbi(torch.zeros((2, 0, 3)).double(), torch.zeros((2, 0), dtype=torch.bool), trans, start).shape == (2, 0)
    em = numpy.random.RandomState(0).normal(size=(2, 3, 3))
    mask = numpy.array([[False] * 3, [True] * 3])
    paths = viterbi(T(em), M(mask), trans, start).numpy()
    assert (paths[0] == 0).all()  # an empty doc in a batch with others
    assert tuple(paths[1]) == brute_best(em[1], trans.numpy(), start.numpy())


def test_viterbi_float32_like_the_decoder():
    """The decoder runs in float32: same paths as float64 on a random problem."""
    tags, lengths, em, mask, trans, start, end = random_problem(7, constrained=True)
    a = viterbi(T(em), M(mask), T(trans), T(start), T(end))
    b = viterbi(T(em).float(), M(mask), T(trans).float(), T(start).float(), T(end).float())
    assert torch.equal(a, b)
