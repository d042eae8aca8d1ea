"""The ``twitter_bilstm_ner`` component: entry points, learning, API, serialization, robustness."""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy
import pytest
import spacy
import srsly
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Model, Ragged

from spacy_twitter_ner.component import FORMAT_VERSION
from spacy_twitter_ner.models.crf import CRF
from spacy_twitter_ner.models.scores import CRFScores, TagScores

NAME = "twitter_bilstm_ner"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUBPROCESS_ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONIOENCODING="utf-8")

TEXTS = [
    "Lady Gaga is in Paris tonight",
    "omg Tom Brady just landed in Tokyo !!",
    "@fan saw Adele at Madison Square Garden http://t.co/q",
    "",
    "   ",
    "Boston loves Barack Obama",
    "nothing to see here",
]


def run_python(code, *args, timeout=300):
    """Run ``code`` in a fresh interpreter (own process group, so that a hang, workers included,
    is killed and fails the test instead of stalling it)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=SUBPROCESS_ENV, cwd=ROOT, start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"subprocess did not finish within {timeout}s (hang)")
    assert proc.returncode == 0, err.decode("utf-8", "replace")[-3000:]
    return out.decode("utf-8")


def signature(doc):
    return (doc.text, [(e.start_char, e.end_char, e.label_) for e in doc.ents], [e._.score for e in doc.ents])


def assert_same_docs(docs_a, docs_b, atol=1e-6):
    assert len(docs_a) == len(docs_b)
    for a, b in zip(docs_a, docs_b):
        sa, sb = signature(a), signature(b)
        assert sa[:2] == sb[:2]
        numpy.testing.assert_allclose(sa[2], sb[2], atol=atol)


def is_valid_bio(tags, path):
    prev = "O"
    for i, tag_id in enumerate(path):
        tag = tags[tag_id]
        if tag.startswith("I-") and (i == 0 or prev == "O" or prev[2:] != tag[2:]):
            return False
        prev = tag
    return True


def new_pipeline(helpers, config=None, **kwargs):
    nlp = helpers.twitter_nlp()
    nlp.add_pipe(NAME, config=helpers.small_model_config() if config is None else config, **kwargs)
    return nlp


@pytest.fixture(scope="module")
def saved_dir(trained, tmp_path_factory):
    nlp, _ = trained
    path = tmp_path_factory.mktemp("model") / "pipeline"
    nlp.to_disk(path)
    return path


# -- entry points ----------------------------------------------------------------------------------


def test_entry_points_without_import():
    code = textwrap.dedent(
        """
        import sys, torch
        torch.set_num_threads(1)
        import spacy
        assert "spacy_twitter_ner" not in sys.modules
        nlp = spacy.blank("en")
        nlp.add_pipe("twitter_bilstm_ner")
        assert nlp.pipe_names == ["twitter_bilstm_ner"]
        tok = spacy.registry.tokenizers.get("spacy_twitter_ner.TwitterTokenizer.v1")
        for name in ("BiLSTMTagger", "TokenFeatures", "BiLSTMEncoder", "SoftmaxDecoder", "CRFDecoder"):
            assert spacy.registry.architectures.get(f"spacy_twitter_ner.{name}.v1")
        nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "spacy_twitter_ner.TwitterTokenizer.v1"}}})
        print(type(nlp.tokenizer).__name__, [t.text for t in nlp("@you http://t.co/x :)")])
        """
    )
    out = run_python(code, timeout=120)
    assert out.strip() == "TwitterTokenizer ['@you', 'http://t.co/x', ':)']"


def test_registry_in_process():
    assert spacy.registry.tokenizers.get("spacy_twitter_ner.TwitterTokenizer.v1")
    for name in ("BiLSTMTagger", "TokenFeatures", "BiLSTMEncoder", "SoftmaxDecoder", "CRFDecoder"):
        assert spacy.registry.architectures.get(f"spacy_twitter_ner.{name}.v1")


# -- learning ----------------------------------------------------------------------------------------


def seed_component_config():
    cfg = spacy.util.load_config(os.path.join(ROOT, "configs", "seed.cfg"), interpolate=True)
    component = dict(cfg["components"][NAME])
    component.pop("factory")
    return component


@pytest.mark.parametrize("which", ["default-crf", "seed-softmax", "small-crf"])
def test_learns_tiny_corpus(which, tiny_helpers):
    if which == "default-crf":
        config, lr = {}, 0.003
    elif which == "seed-softmax":
        config, lr = seed_component_config(), 0.005
        assert config["model"]["decoder"]["@architectures"] == "spacy_twitter_ner.SoftmaxDecoder.v1"
    else:
        config, lr = None, 0.01
    nlp, exs, history, f1_before = tiny_helpers.train_tiny(config, epochs=6, drop=0.1, learn_rate=lr)
    ner = nlp.get_pipe(NAME)
    assert (ner.model.get_ref("decoder").get_ref("head").name == CRF) == (which != "seed-softmax")
    assert isinstance(ner.model.predict([exs[0].predicted]), CRFScores) == (which != "seed-softmax")
    assert f1_before < 0.5
    scores = nlp.evaluate(exs)
    assert scores["ents_f"] >= 0.9, (scores, history)
    assert history[-1] < 0.5 * history[0], history
    assert min(history[1:]) < history[0]
    # and on unseen tweets from the same templates
    held_out = tiny_helpers.tiny_corpus(nlp, n=30, seed=1)
    assert nlp.evaluate(held_out)["ents_f"] >= 0.9


# -- API -----------------------------------------------------------------------------------------------


def test_initialize_labels_from_data(tiny_helpers):
    nlp = new_pipeline(tiny_helpers)
    exs = tiny_helpers.tiny_corpus(nlp, n=10)
    nlp.initialize(lambda: exs)
    ner = nlp.get_pipe(NAME)
    assert ner.labels == ("geo-loc", "person")
    assert ner.tags == ["O", "B-geo-loc", "I-geo-loc", "B-person", "I-person"]
    assert ner.label_data == ["geo-loc", "person"]


def test_labels_from_config_are_used(tiny_helpers):
    cfg = tiny_helpers.small_model_config()
    cfg["labels"] = ["person", "geo-loc", "product"]
    nlp = new_pipeline(tiny_helpers, cfg)
    exs = tiny_helpers.tiny_corpus(nlp, n=10)
    nlp.initialize(lambda: exs)
    ner = nlp.get_pipe(NAME)
    assert ner.labels == ("person", "geo-loc", "product")
    assert len(ner.tags) == 7
    assert ner.tag_probabilities(nlp.make_doc("Adele in Paris"))[0].shape == (3, 7)


def test_labels_subset_from_config_ignores_other_entities(tiny_helpers):
    cfg = tiny_helpers.small_model_config()
    cfg["labels"] = ["person"]
    nlp = new_pipeline(tiny_helpers, cfg)
    exs = tiny_helpers.tiny_corpus(nlp, n=10)
    nlp.initialize(lambda: exs)
    ner = nlp.get_pipe(NAME)
    assert ner.labels == ("person",)
    # geo-loc gold is unknown (-1), person gold is used
    gold = ner.gold_tag_ids(exs[:1])
    assert gold.shape == (len(exs[0].predicted),)
    assert (gold == -1).sum() == len(exs[0].reference.ents[1]) and (gold >= 0).sum() > 0
    person = exs[0].reference.ents[0]
    assert [ner.tags[i] for i in gold[person.start:person.end]] == ["B-person"] + ["I-person"] * (len(person) - 1)
    losses = nlp.update(exs)
    assert numpy.isfinite(losses[NAME])


def test_labels_passed_to_initialize(tiny_helpers):
    nlp = new_pipeline(tiny_helpers)
    exs = tiny_helpers.tiny_corpus(nlp, n=10)
    ner = nlp.get_pipe(NAME)
    ner.initialize(lambda: exs, nlp=nlp, labels=["person", "geo-loc", "company"])
    assert ner.labels == ("person", "geo-loc", "company")


def test_add_label_before_and_after_initialize(tiny_helpers):
    nlp = new_pipeline(tiny_helpers)
    ner = nlp.get_pipe(NAME)
    assert ner.add_label("company") == 1
    assert ner.add_label("company") == 0
    assert ner.labels == ("company",)
    with pytest.raises(ValueError):
        ner.add_label(5)
    exs = tiny_helpers.tiny_corpus(nlp, n=10)
    nlp.initialize(lambda: exs)
    # labels given before initialize define the label set
    assert ner.labels == ("company",)
    ner.add_label("company")  # already there: fine
    with pytest.raises(ValueError, match=NAME):
        ner.add_label("musicartist")
    assert ner.labels == ("company",)


def test_add_label_then_initialize_with_data_labels(tiny_helpers):
    nlp = new_pipeline(tiny_helpers)
    ner = nlp.get_pipe(NAME)
    for label in ("person", "geo-loc", "company"):
        ner.add_label(label)
    exs = tiny_helpers.tiny_corpus(nlp, n=10)
    nlp.initialize(lambda: exs)
    assert ner.labels == ("person", "geo-loc", "company")
    assert len(ner.tags) == 7
    nlp.update(exs)


def _plain_words(examples):
    """Lower-cased words of the examples, less mentions and URLs (the vocabulary has <USR>/<URL>)."""
    return {t.lower_ for eg in examples for t in eg.reference if not t.like_url and not t.text.startswith("@")}


def _word_vocabulary(ner):
    return next(node.attrs["words"] for node in ner.model.walk() if isinstance(node.attrs.get("words"), list))


def test_init_corpus_replaces_spacys_sample(tiny_helpers):
    """With a streamed corpus spaCy initialises from its first 100 examples only; init_corpus
    gives the component the whole corpus (vocabulary and labels)."""
    nlp = new_pipeline(tiny_helpers)
    exs = tiny_helpers.tiny_corpus(nlp, n=40)
    ner = nlp.get_pipe(NAME)
    ner.initialize(lambda: exs[:1], nlp=nlp, init_corpus=lambda nlp_: exs)
    words = set(_word_vocabulary(ner))
    assert _plain_words(exs) <= words
    assert ner.labels == ("geo-loc", "person")


def test_init_corpus_from_the_config(tiny_helpers, tmp_path):
    """The setting reaches the component through [initialize.components] (a registered reader)."""
    from spacy.tokens import DocBin

    nlp = new_pipeline(tiny_helpers)
    exs = tiny_helpers.tiny_corpus(nlp, n=40)
    DocBin(docs=[eg.reference for eg in exs]).to_disk(tmp_path / "train.spacy")
    nlp.config["initialize"]["components"][NAME] = {
        "init_corpus": {"@readers": "spacy.Corpus.v1", "path": str(tmp_path / "train.spacy"), "gold_preproc": True}
    }
    nlp.initialize(lambda: exs[:1])
    words = set(_word_vocabulary(nlp.get_pipe(NAME)))
    assert len(words - _plain_words(exs[:1])) > 20
    assert _plain_words(exs) <= words


def test_initialize_without_entities_raises(tiny_helpers):
    nlp = new_pipeline(tiny_helpers)
    exs = [Example.from_dict(nlp.make_doc(t), {"entities": []}) for t in ("hello there", "no entities here")]
    with pytest.raises(ValueError, match="no labels given and no entities"):
        nlp.initialize(lambda: exs)


def test_initialize_without_examples_raises(tiny_helpers):
    nlp = new_pipeline(tiny_helpers)
    ner = nlp.get_pipe(NAME)
    # spaCy's own validation (E930, a TypeError) or the component's ValueError
    with pytest.raises((TypeError, ValueError)):
        ner.initialize(lambda: [], nlp=nlp)


def test_predict_and_set_annotations(trained):
    nlp, _ = trained
    ner = nlp.get_pipe(NAME)
    docs = [nlp.make_doc(t) for t in TEXTS]
    preds = ner.predict(docs)
    assert len(preds) == len(docs)
    for doc, (path, probs) in zip(docs, preds):
        assert len(path) == len(probs) == len(doc)
        assert is_valid_bio(ner.tags, path)
        assert ((probs >= 0) & (probs <= 1 + 1e-9)).all()
    ner.set_annotations(docs, preds)
    assert [(e.text, e.label_) for e in docs[0].ents] == [("Lady Gaga", "person"), ("Paris", "geo-loc")]
    for doc in docs:
        for ent in doc.ents:
            assert ent.label_ in ner.labels
            assert isinstance(ent._.score, float)
            assert 0.0 <= ent._.score <= 1.0
    assert docs[3].ents == () and docs[4].ents == ()


def test_tag_probabilities(trained):
    nlp, _ = trained
    ner = nlp.get_pipe(NAME)
    docs = [nlp.make_doc(t) for t in TEXTS]
    probs = ner.tag_probabilities(docs)
    assert len(probs) == len(docs)
    for doc, p in zip(docs, probs):
        assert p.shape == (len(doc), len(ner.tags))
        if len(doc):
            numpy.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
            assert (p >= 0).all()
    single = ner.tag_probabilities(docs[0])
    assert len(single) == 1
    numpy.testing.assert_allclose(single[0], probs[0], atol=1e-6)
    # the score of an entity is the mean probability of its tags
    doc = nlp(TEXTS[0])
    p = probs[0]
    tag_ids = {t: i for i, t in enumerate(ner.tags)}
    for ent in doc.ents:
        ids = [tag_ids[("B-" if i == ent.start else "I-") + ent.label_] for i in range(ent.start, ent.end)]
        assert ent._.score == pytest.approx(float(numpy.mean(p[numpy.arange(ent.start, ent.end), ids])), abs=1e-6)


def test_tag_probabilities_all_empty(trained):
    nlp, _ = trained
    ner = nlp.get_pipe(NAME)
    probs = ner.tag_probabilities([nlp.make_doc(""), nlp.make_doc("")])
    assert [p.shape for p in probs] == [(0, len(ner.tags))] * 2


@pytest.mark.parametrize("text", ["", " ", "   \n\t  ", "\n", "\u3000\u00a0"])
def test_empty_and_whitespace_text(trained, text):
    nlp, _ = trained
    doc = nlp(text)
    assert doc.text == text
    assert doc.ents == ()
    docs = list(nlp.pipe([text, "Lady Gaga in Paris", text]))
    assert docs[0].ents == () and docs[2].ents == ()
    assert [e.text for e in docs[1].ents] == ["Lady Gaga", "Paris"]


def test_whitespace_tokens_never_in_entities(trained):
    nlp, _ = trained
    doc = nlp("Lady   Gaga \n\n Paris  \t Madison Square Garden")
    for ent in doc.ents:
        assert not any(t.is_space for t in ent)


@pytest.fixture(scope="module")
def softmax_nlp(tiny_helpers):
    nlp = new_pipeline(tiny_helpers, tiny_helpers.small_model_config("spacy_twitter_ner.SoftmaxDecoder.v1"))
    exs = tiny_helpers.tiny_corpus(nlp, n=10)
    nlp.initialize(lambda: exs)
    return nlp


@pytest.mark.parametrize("kind", ["crf", "softmax"])
def test_scores_favouring_invalid_tags_still_give_valid_entities(kind, trained, softmax_nlp, monkeypatch):
    nlp = trained[0] if kind == "crf" else softmax_nlp
    ner = nlp.get_pipe(NAME)
    tags = ner.tags
    head = ner.model.get_ref("decoder").get_ref("head")
    assert (head.name == CRF) == (kind == "crf")
    wanted = ["I-person", "O", "I-person", "I-person", "B-geo-loc", "I-person", "O", "I-geo-loc"]
    doc = nlp.make_doc("a b c d e f g h")
    flat = numpy.full((len(doc), len(tags)), -20.0, dtype="float32")
    flat[numpy.arange(len(doc)), [tags.index(t) for t in wanted]] = 20.0
    original = Model.predict

    def fake_predict(self, X):
        if self is ner.model:
            emissions = Ragged(self.ops.asarray2f(numpy.concatenate([flat] * len(X))), self.ops.asarray1i([len(d) for d in X]))
            if kind == "softmax":
                return TagScores(self.ops, emissions)
            # the trained transition scores, which never saw such emissions
            return CRFScores(self.ops, emissions, *(head.get_param(n) for n in ("transitions", "start", "end")))
        return original(self, X)

    monkeypatch.setattr(Model, "predict", fake_predict)
    preds = ner.predict([doc, doc])
    for path, probs in preds:
        assert is_valid_bio(tags, path), [tags[i] for i in path]
        assert ((probs >= 0) & (probs <= 1 + 1e-9)).all()
    ner.set_annotations([doc], preds[:1])
    for ent in doc.ents:
        assert ent.label_ in ner.labels
        assert 0 <= ent._.score <= 1
    # with softmax scores and zero transitions the best valid path is known
    if kind == "softmax":
        got = [tags[i] for i in preds[0][0]]
        assert got[1] == "O" and got[4] == "B-geo-loc" and got[6] == "O"
        assert not got[0].startswith("I-")
    for p in ner.tag_probabilities([doc]):
        numpy.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)


def test_set_annotations_with_crafted_invalid_path(trained):
    """The decoders never give an invalid path; if one is given anyway, it is read as spaCy's
    iob_to_biluo (and conlleval) read it: an I-X that continues no X starts an entity."""
    nlp, _ = trained
    ner = nlp.get_pipe(NAME)
    t = {tag: i for i, tag in enumerate(ner.tags)}
    doc = nlp.make_doc("a b c d e f g")
    path = numpy.asarray([t["I-person"], t["O"], t["I-geo-loc"], t["B-person"], t["I-person"], t["I-geo-loc"], t["O"]])
    chosen = numpy.asarray([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8])
    probs = numpy.zeros((len(path), len(ner.tags)))
    probs[numpy.arange(len(path)), path] = chosen  # predict gives every tag's probability
    ner.set_annotations([doc], [(path, probs)])
    assert [(e.start, e.end, e.label_) for e in doc.ents] == [(0, 1, "person"), (2, 3, "geo-loc"), (3, 5, "person"), (5, 6, "geo-loc")]
    assert [e._.score for e in doc.ents] == pytest.approx([0.1, 0.3, 0.5, 0.7])


# -- serialization ---------------------------------------------------------------------------------


def test_to_disk_and_load(trained, saved_dir):
    nlp, _ = trained
    nlp2 = spacy.load(saved_dir)
    assert nlp2.pipe_names == [NAME]
    assert type(nlp2.tokenizer).__name__ == "TwitterTokenizer"
    assert nlp2.get_pipe(NAME).labels == nlp.get_pipe(NAME).labels
    assert_same_docs(list(nlp.pipe(TEXTS)), list(nlp2.pipe(TEXTS)))
    assert any(doc.ents for doc in nlp2.pipe(TEXTS))


def test_to_bytes_and_from_bytes(trained):
    nlp, _ = trained
    data = nlp.to_bytes()
    fresh = spacy.util.load_model_from_config(nlp.config, auto_fill=True)
    fresh.from_bytes(data)
    assert_same_docs(list(nlp.pipe(TEXTS)), list(fresh.pipe(TEXTS)))
    # the component on its own
    ner_data = nlp.get_pipe(NAME).to_bytes()
    fresh2 = spacy.util.load_model_from_config(nlp.config, auto_fill=True)
    fresh2.get_pipe(NAME).from_bytes(ner_data)
    assert_same_docs(list(nlp.pipe(TEXTS)), list(fresh2.pipe(TEXTS)))


def _copy(saved_dir, tmp_path):
    path = tmp_path / "copy"
    shutil.copytree(saved_dir, path)
    return path


def _load_error(path):
    with pytest.raises(ValueError) as info:
        spacy.load(path)
    assert info.type is ValueError, info.type
    message = str(info.value)
    assert NAME in message
    return message


def test_missing_model_file(saved_dir, tmp_path):
    path = _copy(saved_dir, tmp_path)
    (path / NAME / "model").unlink()
    message = _load_error(path)
    assert "missing" in message and "model" in message


def test_missing_cfg_file(saved_dir, tmp_path):
    path = _copy(saved_dir, tmp_path)
    (path / NAME / "cfg").unlink()
    assert "missing" in _load_error(path)


@pytest.mark.parametrize("keep", [0.5, 0.05, 0.0])
def test_truncated_model_file(saved_dir, tmp_path, keep):
    path = _copy(saved_dir, tmp_path)
    model = path / NAME / "model"
    data = model.read_bytes()
    model.write_bytes(data[: int(len(data) * keep)])
    message = _load_error(path)
    assert "could not load the model weights" in message and "truncated" in message


def test_garbage_model_file(saved_dir, tmp_path):
    path = _copy(saved_dir, tmp_path)
    (path / NAME / "model").write_bytes(b"\x00\xffnot a model at all" * 10)
    assert "could not load the model weights" in _load_error(path)


def test_saved_format_is_the_current_one(saved_dir):
    assert FORMAT_VERSION == 2
    assert srsly.read_json(saved_dir / NAME / "cfg")["format"] == FORMAT_VERSION


@pytest.mark.parametrize("number", [1, 99])
def test_other_format_number(saved_dir, tmp_path, number):
    """Format 1 (before the CRF became a layer and the knowledge sources sub-layers) and any
    other number: an error that names the format and says to retrain."""
    path = _copy(saved_dir, tmp_path)
    cfg = srsly.read_json(path / NAME / "cfg")
    cfg["format"] = number
    srsly.write_json(path / NAME / "cfg", cfg)
    message = _load_error(path)
    assert f"format {number}" in message and f"reads format {FORMAT_VERSION}" in message
    assert "Retrain" in message


def test_format_1_pipeline_without_format_2_weights(saved_dir, tmp_path):
    """A format-1 cfg is refused before its weights are read (they would not fit)."""
    path = _copy(saved_dir, tmp_path)
    cfg = srsly.read_json(path / NAME / "cfg")
    cfg["format"] = 1
    srsly.write_json(path / NAME / "cfg", cfg)
    (path / NAME / "model").write_bytes(b"format-1 weights")
    message = _load_error(path)
    assert "format 1" in message and "Retrain" in message
    assert "could not load the model weights" not in message


def test_other_format_number_from_bytes(trained):
    nlp, _ = trained
    ner = nlp.get_pipe(NAME)
    parts = srsly.msgpack_loads(ner.to_bytes())
    cfg = srsly.json_loads(parts["cfg"])
    cfg["format"] = 1
    parts["cfg"] = srsly.json_dumps(cfg)
    fresh = spacy.util.load_model_from_config(nlp.config, auto_fill=True)
    with pytest.raises(ValueError, match=f"{NAME}.*format 1.*Retrain") as info:
        fresh.get_pipe(NAME).from_bytes(srsly.msgpack_dumps(parts))
    assert info.type is ValueError


def test_pickle_round_trip(trained):
    """A pipeline pickles (spaCy's multiprocessing under spawn/forkserver, Dask): same entities,
    same scores."""
    import pickle

    nlp, _ = trained
    copy = pickle.loads(pickle.dumps(nlp))
    assert_same_docs(list(nlp.pipe(TEXTS)), list(copy.pipe(TEXTS)), atol=0)
    assert any(doc.ents for doc in copy.pipe(TEXTS))


def test_truncated_bytes(trained):
    nlp, _ = trained
    data = nlp.get_pipe(NAME).to_bytes()
    fresh = spacy.util.load_model_from_config(nlp.config, auto_fill=True)
    for cut in (len(data) // 2, 10):
        with pytest.raises(ValueError, match=NAME) as info:
            fresh.get_pipe(NAME).from_bytes(data[:cut])
        assert info.type is ValueError


# -- the component is glue: the maths lives with the scores -------------------------------------


FORBIDDEN_MATHS = {"exp", "log", "log1p", "logaddexp", "logsumexp", "softmax", "log_softmax", "argmax",
                   "max", "amax", "einsum", "matmul", "dot", "cumsum", "expm1"}


def test_component_does_no_maths_on_scores():
    """component.py never imports torch (or the CRF maths) and never computes on scores: it
    calls ``scores.loss`` and ``scores.decode``."""
    import ast

    from spacy_twitter_ner import component

    source = open(component.__file__, encoding="utf8").read()
    tree = ast.parse(source)
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ("." * node.level) + (node.module or "")
            modules |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    assert not [m for m in modules if m.split(".")[0] in ("torch", "scipy")], modules
    assert not [m for m in modules if "torch_crf" in m or m.endswith("logsumexp")], modules
    maths = sorted({node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_MATHS}
                   | {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and node.id in FORBIDDEN_MATHS})
    assert maths == [], maths
    assert not any(isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult) for node in ast.walk(tree))
    assert ".loss(" in source and ".decode(" in source


# -- tokenisation independence, scorer, determinism ---------------------------------------------


def test_pretokenized_doc_gets_same_entities(trained):
    nlp, _ = trained
    for text in TEXTS + ["@fan Lady Gaga http://t.co/q is in New York tonight #live"]:
        raw = nlp(text)
        tokens = nlp.make_doc(text)
        words = [t.text for t in tokens]
        spaces = [bool(t.whitespace_) for t in tokens]
        for doc in (Doc(nlp.vocab, words=words, spaces=spaces), Doc(nlp.vocab, words=words)):
            doc = nlp(doc)
            assert [(e.start, e.end, e.label_) for e in doc.ents] == [(e.start, e.end, e.label_) for e in raw.ents]
            numpy.testing.assert_allclose([e._.score for e in doc.ents], [e._.score for e in raw.ents], atol=1e-6)


def test_scorer_output(trained):
    nlp, exs = trained
    scores = nlp.evaluate(exs)
    for key in ("ents_p", "ents_r", "ents_f", "ents_per_type"):
        assert key in scores
    assert set(scores["ents_per_type"]) == {"person", "geo-loc"}
    for per_type in scores["ents_per_type"].values():
        assert set(per_type) == {"p", "r", "f"}


def test_determinism(trained):
    nlp, _ = trained
    texts = TEXTS * 3 + ["Lady Gaga " * 30]
    first = [signature(d) for d in nlp.pipe(texts, batch_size=4)]
    second = [signature(d) for d in nlp.pipe(texts, batch_size=4)]
    assert first == second  # bit for bit
    # other batchings change float32 rounding only
    assert_same_docs(list(nlp.pipe(texts, batch_size=4)), list(nlp.pipe(texts, batch_size=7)))
    assert_same_docs([nlp(t) for t in texts[:5]], list(nlp.pipe(texts[:5], batch_size=4)))


# -- robustness ------------------------------------------------------------------------------------


def robustness_texts():
    return [
        "",
        " ",
        "\n\t \r\n",
        "😀😂🎉👍🏽👨‍👩‍👧",
        "@someone",
        "http://t.co/abc https://example.com/x?y=1",
        "@a @b http://t.co/x",
        " ".join(["Lady", "Gaga", "in", "Paris", "and"] * 2000),  # 10,000 words
        "Adele\x00in\x01Paris \x7f\x1b[31m Tom Brady\x0b\x0c",
        "باراك أوباما في باريس",
        "东京 的 Lady Gaga 北京",
        "नरेंद्र मोदी दिल्ली में",
        "\u200fשלום \u200e Tom Brady \u202eBoston\u202c",
        "Lady Gaga is in Paris tonight",
        "\u2028line\u2029sep\x85",
    ]


def test_robustness_single_process(trained):
    nlp, _ = trained
    texts = robustness_texts() + ["x" * 1_000_000, "\ud800", "Lady Gaga \ud800 in Paris \udfff"]
    for text in texts:
        doc = nlp(text)
        assert doc.text == text
        for ent in doc.ents:
            assert 0 <= ent._.score <= 1
    assert len(nlp(texts[7])) >= 10_000
    doc = nlp("Lady Gaga \ud800 in Paris \udfff")
    assert [e.text for e in doc.ents] == ["Lady Gaga", "Paris"]


MULTIPROCESS_SCRIPT = """
import json, sys, torch
torch.set_num_threads(1)
import spacy
nlp = spacy.load(sys.argv[1])
texts = json.load(open(sys.argv[2], encoding="utf8"))
def sig(doc):
    return [doc.text, [[e.start_char, e.end_char, e.label_, e._.score] for e in doc.ents]]
nlp("Lady Gaga is in Paris tonight")  # torch has run in the parent before the fork
single = [sig(nlp(t)) for t in texts]
multi = [sig(d) for d in nlp.pipe(texts, n_process=2, batch_size=3)]
print(json.dumps({"single": single, "multi": multi}))
"""


def test_multiprocess_pipe_equals_single(saved_dir, tmp_path):
    texts = robustness_texts()
    texts_path = tmp_path / "texts.json"
    texts_path.write_text(json.dumps(texts), encoding="utf8")
    out = json.loads(run_python(MULTIPROCESS_SCRIPT, str(saved_dir), str(texts_path), timeout=300).strip().splitlines()[-1])
    single, multi = out["single"], out["multi"]
    assert len(single) == len(multi) == len(texts)
    assert [s[0] for s in multi] == texts
    for s, m in zip(single, multi):
        assert [e[:3] for e in s[1]] == [e[:3] for e in m[1]]
        numpy.testing.assert_allclose([e[3] for e in s[1]], [e[3] for e in m[1]], atol=1e-6)
    assert any(s[1] for s in single)


def test_initialize_warns_with_counts_for_unknown_labels_and_empty_tweets(capsys):
    """Nothing is dropped silently: entities outside the configured label set and empty
    training tweets are reported with their counts."""
    from spacy.tokens import Doc

    nlp = spacy.blank("en")
    nlp.add_pipe("twitter_bilstm_ner", config={"labels": ["person"]})
    examples = [
        Example.from_dict(nlp.make_doc("Lady Gaga in Paris"), {"entities": [(0, 9, "person"), (13, 18, "geo-loc")]}),
        Example.from_dict(nlp.make_doc("Adele in Tokyo"), {"entities": [(0, 5, "person"), (9, 14, "geo-loc")]}),
        Example(Doc(nlp.vocab, words=[]), Doc(nlp.vocab, words=[])),
    ]
    nlp.initialize(lambda: examples)
    out = capsys.readouterr().out
    assert "2 entities (geo-loc)" in out
    assert "1 of 3 training examples are empty" in out
    assert nlp.get_pipe("twitter_bilstm_ner").labels == ("person",)


# -- the decision bias ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["high", float("nan"), None])
def test_outside_bias_must_be_a_number(tiny_helpers, bad):
    nlp = tiny_helpers.twitter_nlp()
    with pytest.raises(ValueError, match="outside_bias"):
        nlp.add_pipe(NAME, config={**tiny_helpers.small_model_config(), "outside_bias": bad})


def test_outside_bias_from_the_loaded_config(saved_dir):
    """A saved pipeline's outside_bias can be set at load time; a huge one makes every
    (non-space) token part of an entity, a hugely negative one none."""
    text = "Carmelo Anthony and Kevin Durant were in Paris with @fan today"
    tagged = {}
    for bias in (-50.0, 0.0, 50.0):
        nlp = spacy.load(saved_dir, config={"components": {NAME: {"outside_bias": bias}}})
        assert nlp.get_pipe(NAME).outside_bias == bias
        doc = nlp(text)
        tagged[bias] = sum(len(e) for e in doc.ents)
    assert tagged[-50.0] == 0
    assert tagged[50.0] == len(nlp.make_doc(text))
    assert tagged[-50.0] <= tagged[0.0] <= tagged[50.0]
