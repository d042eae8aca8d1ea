"""Distillation: the teacher pass (spacy_twitter_ner.training.teach: dev/test and duplicate
filtering with counts, resumable shards with the teacher's tag distributions and entities) and the
``spacy_twitter_ner.DistillCorpus.v1`` reader (gold like spacy.Corpus.v1, seeded per-epoch silver
samples, soft or hard teacher labels), and a student that learns from teacher labels only."""
import json
import random
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.tokens import Doc, DocBin
from spacy.training import Corpus
from spacy.util import registry
from thinc.api import Adam, Config, fix_random_seed

from spacy_twitter_ner.component import SOFT_TARGETS
from spacy_twitter_ner.training import teach as teach_mod
from spacy_twitter_ner.training.distill import READER_NAME, DistillCorpus
from spacy_twitter_ner.training.teach import Counts, Exclusion, loose_key, normalise, read_tweets, shard_name, teach

NAME = "twitter_bilstm_ner"
ROOT = Path(__file__).resolve().parents[1]


def _corpus_doc(nlp, text):
    """A doc as the corpus converter makes it: the tokens joined by spaces."""
    return Doc(nlp.vocab, words=[t.text for t in nlp.make_doc(text)])


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, tiny_helpers):
    nlp, exs, _, _ = tiny_helpers.train_tiny(epochs=10)
    path = tmp_path_factory.mktemp("teacher") / "model-best"
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_helpers):
    """Gold train/dev/test .spacy files and a raw tweet file that holds some dev/test tweets
    (written the raw way, other case and spacing), duplicates and empty lines."""
    root = tmp_path_factory.mktemp("data")
    nlp = tiny_helpers.twitter_nlp()
    gold = tiny_helpers.tiny_corpus(nlp, n=60, seed=0)
    DocBin(docs=[eg.reference for eg in gold]).to_disk(root / "train.spacy")
    dev_texts = ["omg Lady Gaga just landed in Paris !!", "@fan saw Adele at Tokyo tonight http://t.co/q"]
    test_texts = ["Boston loves Tom Brady &amp; more"]
    DocBin(docs=[_corpus_doc(nlp, t) for t in dev_texts]).to_disk(root / "dev.spacy")
    DocBin(docs=[_corpus_doc(nlp, t) for t in test_texts]).to_disk(root / "test.spacy")
    rnd = random.Random(3)
    people = ["Carmelo Anthony", "Lady Gaga", "Barack Obama", "Tom Brady", "Adele", "Jay Z", "Rihanna"]
    places = ["New York", "Paris", "Tokyo", "Madison Square Garden", "Boston", "Berlin", "Rome"]
    frames = ["{p} is in {l} tonight", "can't wait for {p} in {l} #live", "{l} loves {p}",
              "so {p} was in {l} today lol", "{p} @ {l} !!! {n}"]
    unique = []
    while len(unique) < 130:
        t = rnd.choice(frames).format(p=rnd.choice(people), l=rnd.choice(places), n=len(unique))
        if t not in unique and t not in Exclusion(dev_texts + test_texts):
            unique.append(t)
    lines = list(unique[:40])
    lines += ["OMG  lady gaga just landed in paris!!", "@someone saw Adele at Tokyo tonight https://t.co/other"]  # dev
    lines += [unique[3], "", unique[7], "   "]  # 2 duplicates, 2 empty
    lines += ["Boston loves Tom Brady & more"]  # test (&amp; unescaped)
    lines += unique[40:] + [unique[50]]  # 1 more duplicate
    raw = root / "tweets.txt"
    raw.write_text("\n".join(lines[:70]) + "\n", encoding="utf8")
    raw2 = root / "more.txt"
    raw2.write_text("\n".join(lines[70:]), encoding="utf8")  # no final newline
    expected = {"read": len(lines), "empty": 2, "dropped_dev_test": 3, "dropped_duplicates": 3,
                "annotated": len(lines) - 8}
    return {"root": root, "raw": [raw, raw2], "exclude": [root / "dev.spacy", root / "test.spacy"],
            "train": root / "train.spacy", "expected": expected, "unique": unique}


def test_normalise_matches_corpus_tokens_to_raw_strings(tiny_helpers):
    nlp = tiny_helpers.twitter_nlp()
    raw = "RT @nyknicks: Carmelo's at MSG tonight!!! http://t.co/xyz #NBA &gt;&gt;"
    assert normalise(_corpus_doc(nlp, raw).text) == normalise(raw)
    assert normalise("RT @nyknicks: carmelo's AT msg   tonight!!! http://t.co/xyz  #nba >>") == normalise(raw)
    assert loose_key("rt @user: carmelo's AT msg   tonight!!!  #nba >>") == loose_key(raw)
    assert normalise("Carmelo at MSG") != normalise("Carmelo in MSG")
    exclusion = Exclusion([_corpus_doc(nlp, raw).text, "@OGSchill https://t.co/Yxtw5vVtYO", "http://t.co/4FC http://t.co/Wq"])
    assert len(exclusion) == 3
    assert raw.upper() in exclusion and "RT @user: Carmelo's at MSG tonight!!! #NBA >>" in exclusion
    # short tweets are only compared on the strict key: no loose match of any URL-only tweet
    assert "https://t.co/Ih0xSoGWYt" not in exclusion and "@botonaka https://t.co/3fying3ygj" not in exclusion
    assert "http://t.co/4FC  http://t.co/Wq" in exclusion


def test_filter_drops_dev_test_and_duplicates_with_counts(data):
    excluded = teach_mod.excluded_tweets(data["exclude"])
    assert len(excluded) == 3
    counts = Counts()
    tweets = list(read_tweets(data["raw"], excluded, counts))
    got = {k: getattr(counts, k) for k in data["expected"]}
    assert got == data["expected"]
    assert len(tweets) == len(set(tweets)) == counts.annotated
    assert not any("gaga just landed" in t.lower() or "&" in t for t in tweets)
    # limit: stops after N kept tweets, the counts still reconcile
    counts = Counts()
    assert len(list(read_tweets(data["raw"], excluded, counts, limit=45))) == 45
    assert counts.read == counts.empty + counts.dropped_dev_test + counts.dropped_duplicates + counts.annotated


def _shard_docs(path, vocab):
    return list(DocBin().from_disk(path).get_docs(vocab))


def _same_docs(a, b):
    assert [d.text for d in a] == [d.text for d in b]
    assert [[(e.start, e.end, e.label_) for e in d.ents] for d in a] == [[(e.start, e.end, e.label_) for e in d.ents] for d in b]
    for x, y in zip(a, b):
        numpy.testing.assert_array_equal(x.user_data[SOFT_TARGETS], y.user_data[SOFT_TARGETS])


@pytest.fixture(scope="module")
def silver(teacher, data, tmp_path_factory):
    """The teacher pass over the raw tweets (all of them, in this process), 20 tweets a shard."""
    out = tmp_path_factory.mktemp("silver")
    counts = teach(out, data["raw"], teacher, exclude=data["exclude"], shard_size=20, workers=0, progress=False)
    return out, counts


def test_teach_writes_shards_with_distributions_and_entities(silver, data, teacher):
    out, counts = silver
    expected = data["expected"]
    assert {k: getattr(counts, k) for k in expected} == expected
    assert counts.read == counts.empty + counts.dropped_dev_test + counts.dropped_duplicates + counts.annotated
    assert counts.shards == -(-expected["annotated"] // 20) and counts.shards_reused == 0
    summary = json.loads((out / "teach-summary.json").read_text())
    nlp = spacy.load(teacher)
    ner = nlp.get_pipe(NAME)
    assert summary["complete"] and summary["tags"] == list(ner.tags) and summary["labels"] == list(ner.labels)
    assert summary["counts"]["annotated"] == expected["annotated"] and summary["teacher"] == str(teacher)
    assert [s["shard"] for s in summary["shards"]] == [shard_name(i) for i in range(counts.shards)]
    docs = [d for s in summary["shards"] for d in _shard_docs(out / s["shard"], nlp.vocab)]
    assert len(docs) == expected["annotated"] and sum(len(d) for d in docs) == counts.words
    for doc in docs:
        probs = doc.user_data[SOFT_TARGETS]
        assert probs.dtype == numpy.float16 and probs.shape == (len(doc), len(ner.tags))
        numpy.testing.assert_allclose(probs.astype("float32").sum(axis=1), 1.0, atol=5e-3)
        fresh = nlp(doc.text)  # same tokens, same entities as the teacher pipeline sets them
        assert [t.text for t in fresh] == [t.text for t in doc]
        assert [(e.start, e.end, e.label_) for e in fresh.ents] == [(e.start, e.end, e.label_) for e in doc.ents]
        numpy.testing.assert_allclose(probs, ner.tag_probabilities(fresh)[0], atol=2e-3)
    assert any(len(d.ents) for d in docs)


def test_teach_resumes_only_missing_shards(teacher, data, tmp_path, silver):
    full_out, _ = silver
    out = tmp_path / "silver"
    kw = dict(exclude=data["exclude"], shard_size=20, workers=0, progress=False)
    first = teach(out, data["raw"], teacher, limit=50, **kw)  # shards of 20, 20, 10
    assert (first.annotated, first.shards, first.shards_reused) == (50, 3, 0)
    assert first.read == first.empty + first.dropped_dev_test + first.dropped_duplicates + first.annotated
    stamps = {i: (out / shard_name(i)).stat().st_mtime_ns for i in range(3)}
    (out / shard_name(1)).unlink()
    again = teach(out, data["raw"], teacher, limit=50, **kw)
    assert (again.shards, again.shards_reused) == (3, 2)
    # the pass's cost: this run's time plus the earlier finished run's, whose shards it reused
    assert first.seconds_all_runs == pytest.approx(first.seconds)
    assert again.seconds_all_runs == pytest.approx(again.seconds + first.seconds, abs=0.01)
    summary = json.loads((out / teach_mod.SUMMARY_FILE).read_text(encoding="utf8"))
    assert summary["counts"]["seconds_all_runs"] == pytest.approx(again.seconds_all_runs, abs=0.01)
    assert {i: (out / shard_name(i)).stat().st_mtime_ns for i in (0, 2)} == {0: stamps[0], 2: stamps[2]}
    vocab = spacy.blank("en").vocab
    for i in range(3):  # identical to (the start of) the shards of one uninterrupted run
        docs = _shard_docs(out / shard_name(i), vocab)
        assert len(docs) == (20 if i < 2 else 10)
        _same_docs(docs, _shard_docs(full_out / shard_name(i), vocab)[:len(docs)])
    # the full run reuses the two complete shards and redoes the partial third
    full = teach(out, data["raw"], teacher, **kw)
    assert full.shards_reused == 2 and full.annotated == data["expected"]["annotated"]
    for i in range(full.shards):
        _same_docs(_shard_docs(out / shard_name(i), vocab), _shard_docs(full_out / shard_name(i), vocab))


def _key(eg):
    return ([t.text for t in eg.predicted], [t.whitespace_ for t in eg.predicted], [t.text for t in eg.reference],
            [(e.start, e.end, e.label_) for e in eg.reference.ents])


def test_reader_without_silver_is_spacy_corpus_gold_preproc(data, tiny_helpers):
    nlp = tiny_helpers.twitter_nlp()
    ours = list(DistillCorpus(data["train"], None)(nlp))
    theirs = list(Corpus(data["train"], gold_preproc=True)(nlp))
    assert len(ours) == len(theirs) == 60
    assert [_key(eg) for eg in ours] == [_key(eg) for eg in theirs]
    limited = registry.resolve({"c": {"@readers": READER_NAME, "gold": str(data["train"]), "limit": 7}})["c"]
    assert [_key(eg) for eg in limited(nlp)] == [_key(eg) for eg in Corpus(data["train"], gold_preproc=True, limit=7)(nlp)]


def test_reader_soft_and_hard_teacher_labels(data, silver, tiny_helpers):
    out, counts = silver
    nlp = tiny_helpers.twitter_nlp()
    nlp.add_pipe(NAME, config=tiny_helpers.small_model_config())
    soft = list(DistillCorpus(data["train"], out, silver_per_epoch=25, soft=True)(nlp))
    assert len(soft) == 60 + 25
    tags = nlp.get_pipe(NAME).tags  # the student, without labels yet, got the teacher's
    assert len(tags) == 5
    for eg in soft[60:]:
        assert eg.reference.user_data[SOFT_TARGETS].shape == (len(eg.reference), len(tags))
        assert [t.text for t in eg.predicted] == [t.text for t in eg.reference]
    assert not any(SOFT_TARGETS in eg.reference.user_data for eg in soft[:60])
    hard = list(DistillCorpus(data["train"], out, silver_per_epoch=25, soft=False)(nlp))
    assert [eg.reference.text for eg in hard] == [eg.reference.text for eg in soft]
    assert not any(SOFT_TARGETS in eg.reference.user_data for eg in hard)
    assert sum(len(eg.reference.ents) for eg in hard[60:]) > 0
    assert [[(e.start, e.end, e.label_) for e in eg.reference.ents] for eg in hard] == \
        [[(e.start, e.end, e.label_) for e in eg.reference.ents] for eg in soft]
    # the soft targets train the component (its get_loss reads them)
    nlp.initialize(lambda: soft)
    losses = nlp.update(soft[55:70], sgd=Adam(0.001))
    assert numpy.isfinite(losses[NAME]) and losses[NAME] > 0


def test_reader_samples_per_epoch_seeded(data, silver, tiny_helpers):
    out, counts = silver
    nlp = tiny_helpers.twitter_nlp()

    def epochs(seed, n=3, shuffle=False):
        reader = DistillCorpus(None, out, silver_per_epoch=30, seed=seed, shuffle=shuffle)
        return [[eg.reference.text for eg in reader(nlp)] for _ in range(n)]

    a, b = epochs(0), epochs(0)
    assert a == b
    assert all(len(e) == len(set(e)) == 30 for e in a)
    assert a[0] != a[1] and a[1] != a[2]
    assert epochs(1)[0] != a[0]
    shuffled = epochs(0, shuffle=True)
    assert shuffled == epochs(0, shuffle=True) and [sorted(e) for e in shuffled] == [sorted(e) for e in a]
    # 0 or more than there are: all of them every epoch
    everything = DistillCorpus(data["train"], out, silver_per_epoch=0, shuffle=True)
    assert len(list(everything(nlp))) == 60 + counts.annotated
    limited = DistillCorpus(None, out, silver_per_epoch=10_000, limit=33, max_length=9)
    texts = [eg.reference for eg in limited(nlp)]
    assert 0 < len(texts) <= 33 and all(len(d) <= 9 for d in texts)


def test_reader_checks_teacher_tags(data, silver, tiny_helpers):
    out, _ = silver
    cfg = tiny_helpers.small_model_config()
    nlp = tiny_helpers.twitter_nlp()
    nlp.add_pipe(NAME, config=dict(cfg, labels=["person", "geo-loc"]))  # other order
    with pytest.raises(ValueError, match="teacher .* predicts the tags"):
        DistillCorpus(data["train"], out)(nlp)
    with pytest.raises(ValueError, match="not the output of a teacher pass"):
        DistillCorpus(data["train"], data["root"])
    summary = json.loads((out / "teach-summary.json").read_text())
    assert summary["labels"] == ["geo-loc", "person"]


def test_distilled_config_resolves_the_reader(data, silver):
    out, _ = silver
    config = Config().from_disk(ROOT / "configs" / "distilled.cfg", interpolate=False)
    fast = Config().from_disk(ROOT / "configs" / "fast.cfg", interpolate=False)
    # the student is the fast architecture (its encoder, decoder and features), plus the recipe's
    # settings (Brown cluster one-hots, word dropout, the BiLSTM's size: scripts/distill_recipes.py)
    student, fast_model = config["components"]["twitter_bilstm_ner"], fast["components"]["twitter_bilstm_ner"]
    assert student["model"]["decoder"] == fast_model["model"]["decoder"]
    encoders = [dict(m["model"]["encoder"]) for m in (student, fast_model)]
    assert encoders[0].pop("hidden") <= encoders[1].pop("hidden")  # never slower than fast.cfg
    assert encoders[0] == encoders[1]
    feats = {k: v for k, v in student["model"]["features"].items() if k not in ("knowledge", "word_dropout")}
    # the sub-word fallback of the static vectors is a recipe setting too (StaticVectors.v1's own)
    feats["pretrained"] = {k: v for k, v in feats["pretrained"].items() if k not in ("subwords", "subword_dropout")}
    assert feats == fast_model["model"]["features"]
    assert config["corpora"]["dev"] == fast["corpora"]["dev"]
    assert config["paths"]["silver"] is None and config["training"]["max_epochs"] == -1
    config["paths"].update(train=str(data["train"]), dev=str(data["train"]), silver=str(out))
    corpora = registry.resolve(config.interpolate()["corpora"])
    reader = corpora["train"]
    assert isinstance(reader, DistillCorpus) and reader.soft and reader.silver == out
    assert reader.silver_per_epoch == 20000 and reader.shuffle


def test_student_learns_from_teacher_labels_only(teacher, tiny_helpers, tmp_path):
    """A fresh student trained on soft teacher labels of unlabeled tweets (no gold) scores well on
    the gold tweets."""
    raw = tmp_path / "raw.txt"
    raw.write_text("\n".join(t for t, _ in tiny_helpers.tiny_texts(400, seed=11)), encoding="utf8")
    out = tmp_path / "silver"
    counts = teach(out, [raw], teacher, shard_size=50, workers=0, progress=False)
    assert counts.dropped_duplicates > 0 and counts.annotated == counts.read - counts.dropped_duplicates
    fix_random_seed(0)
    nlp = tiny_helpers.twitter_nlp()
    nlp.add_pipe(NAME, config=tiny_helpers.small_model_config())
    reader = DistillCorpus(None, out, silver_per_epoch=80, soft=True, shuffle=True, seed=0)
    nlp.initialize(lambda: reader(nlp))
    gold = tiny_helpers.tiny_corpus(nlp, n=60, seed=0)
    assert nlp.evaluate(gold)["ents_f"] < 0.5
    optimizer = Adam(0.01)
    for _ in range(10):
        examples = reader(nlp)
        assert all(SOFT_TARGETS in eg.reference.user_data for eg in examples)
        for i in range(0, len(examples), 8):
            nlp.update(examples[i:i + 8], sgd=optimizer)
    assert nlp.evaluate(gold)["ents_f"] > 0.9


def test_cli_worker_processes_and_default_teacher(teacher, data, silver, tmp_path, capsys):
    """The command line with 2 worker processes (each loads the teacher, writes its own shards)
    gives the shards of the in-process run; the default teacher is the accurate ensemble, else
    the accurate model."""
    full_out, _ = silver
    out = tmp_path / "silver"
    corpus_dir = tmp_path / "corpus" / "tiny"
    corpus_dir.mkdir(parents=True)
    for split in ("dev", "test"):
        (corpus_dir / f"{split}.spacy").write_bytes((data["root"] / f"{split}.spacy").read_bytes())
    argv = ["tiny", str(out), "--raw", *map(str, data["raw"]), "--teacher", str(teacher), "--corpus-dir",
            str(corpus_dir), "--workers", "2", "--shard-size", "20", "--limit", "60", "--no-progress"]
    assert teach_mod.main(argv) == 0
    line = capsys.readouterr().out
    assert "60 annotated (3 shards, 0 reused)" in line and "3 dropped as dev/test" in line
    vocab = spacy.blank("en").vocab
    for i in range(3):
        _same_docs(_shard_docs(out / shard_name(i), vocab), _shard_docs(full_out / shard_name(i), vocab))
    assert not list(out.glob(".*.tmp"))
    training = tmp_path / "training"
    with pytest.raises(FileNotFoundError, match="no teacher for tiny"):
        teach_mod.default_teacher("tiny", training)
    for name in ("tiny-accurate", "tiny-accurate-ensemble"):
        (training / name / "model-best").mkdir(parents=True)
        (training / name / "model-best" / "config.cfg").write_text("")
        assert teach_mod.default_teacher("tiny", training) == training / name / "model-best"


def test_project_commands_and_workflow():
    """project.yml: `teach` parses with the module's command line, `train-distilled` trains
    configs/distilled.cfg through scripts/train.py with the silver folder, the `distill` workflow
    chains them and `all` is untouched."""
    import shlex
    import sys

    from weasel.util import load_project_config

    project = load_project_config(ROOT, overrides={"vars.corpus": "wnut17", "vars.teach_limit": 500})
    commands = {c["name"]: c for c in project["commands"]}
    assert project["workflows"]["distill"] == ["teach", "train-distilled", "evaluate-distilled"]
    assert project["workflows"]["all"] == ["corpus", "extras", "vectors", "convert", "train", "evaluate"]
    (teach_line,) = commands["teach"]["script"]
    argv = shlex.split(teach_line)
    assert argv[:3] == ["python", "-m", "spacy_twitter_ner.training.teach"]
    args = teach_mod.build_parser().parse_args(argv[3:])
    assert (args.corpus, args.output, args.limit, args.workers) == ("wnut17", Path("assets/silver/wnut17"), 500, 2)
    assert commands["teach"]["outputs"] == ["assets/silver/wnut17"]
    (train_line,) = commands["train-distilled"]["script"]
    argv = shlex.split(train_line)
    assert argv[:2] == ["python", "scripts/train.py"]
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import train as train_script
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    cmd = train_script.build(argv[2:])
    assert cmd[3:5] == ["train", str(Path("configs") / "distilled.cfg")]
    assert cmd[cmd.index("--paths.silver") + 1] == "assets/silver/wnut17"
    assert cmd[cmd.index("--output") + 1] == str(Path("training") / "wnut17-distilled")
    assert "--paths.vectors" in cmd and "--paths.lexicons" in cmd
    assert commands["evaluate-distilled"]["outputs"] == ["metrics/wnut17-distilled-dev.json",
                                                         "metrics/wnut17-distilled-test.json"]
    (self_line,) = commands["train-selftrained"]["script"]
    cmd = train_script.build(shlex.split(self_line)[2:])
    assert cmd[3:5] == ["train", str(Path("configs") / "accurate-selftrained.cfg")]
    assert cmd[cmd.index("--paths.silver") + 1] == "assets/silver/wnut17"
    assert cmd[cmd.index("--output") + 1] == str(Path("training") / "wnut17-accurate-selftrained")
    assert "assets/silver/wnut17" in commands["train-selftrained"]["deps"]


def test_selftrained_accurate_config_is_the_accurate_model_on_teacher_labels(data, silver):
    """configs/accurate-selftrained.cfg is configs/accurate.cfg's model, dev corpus and optimiser,
    trained on a streamed gold + per-epoch silver sample with soft targets."""
    out, _ = silver
    config = Config().from_disk(ROOT / "configs" / "accurate-selftrained.cfg", interpolate=False)
    accurate = Config().from_disk(ROOT / "configs" / "accurate.cfg", interpolate=False)
    assert config["components"] == accurate["components"]
    assert config["corpora"]["dev"] == accurate["corpora"]["dev"]
    # the self-training rows were made before the profile took use_averages (configs/accurate.cfg's
    # header): the student keeps the optimiser they were made with, otherwise the profile's
    optimizer = dict(accurate["training"]["optimizer"], use_averages=False)
    assert config["training"]["optimizer"] == optimizer
    assert config["paths"]["silver"] is None and config["training"]["max_epochs"] == -1
    assert config["training"]["max_steps"] > 0
    config["paths"].update(train=str(data["train"]), dev=str(data["train"]), silver=str(out))
    resolved = config.interpolate()
    reader = registry.resolve(resolved["corpora"])["train"]
    assert isinstance(reader, DistillCorpus) and reader.soft and reader.shuffle and reader.silver == out
    init = resolved["initialize"]["components"]["twitter_bilstm_ner"]["init_corpus"]
    assert init["silver_per_epoch"] == reader.silver_per_epoch and not init["shuffle"]
