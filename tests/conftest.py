"""Shared test helpers: one torch thread, a tiny learnable tweet corpus and a quick trainer."""
import importlib.util
import random
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Optional, Tuple

import pytest
import spacy
import torch
from spacy.language import Language
from spacy.training import Example

torch.set_num_threads(1)

TOKENIZER_NAME = "spacy_twitter_ner.TwitterTokenizer.v1"
TWITTER_CONFIG = {"nlp": {"tokenizer": {"@tokenizers": TOKENIZER_NAME}}}

PEOPLE = ["Carmelo Anthony", "Lady Gaga", "Barack Obama", "Tom Brady", "Adele"]
PLACES = ["New York", "Paris", "Tokyo", "Madison Square Garden", "Boston"]
FRAMES = [
    "{p} is in {l} tonight",
    "omg {p} just landed in {l} !!",
    "@fan saw {p} at {l} http://t.co/q",
    "can't wait for {p} in {l} #live",
    "{l} loves {p}",
]

def load_script(name: str) -> ModuleType:
    """scripts/<name>.py as a module (the scripts are not a package)."""
    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"script_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Small sizes so that a few epochs of training take seconds on one thread.
SMALL_FEATURES = {"width": 32, "word_dim": 32, "char_dim": 8, "char_filters": 16, "shape_dim": 8, "dropout": 0.0}
SMALL_ENCODER = {"nI": 32, "hidden": 32, "dropout": 0.0}


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    torch.set_num_threads(1)
    yield


def twitter_nlp() -> Language:
    return spacy.blank("en", config=TWITTER_CONFIG)


def tiny_texts(n: int = 60, seed: int = 0) -> List[Tuple[str, List[Tuple[int, int, str]]]]:
    """(text, [(start, end, label)]) pairs from templates: one person and one place per tweet."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        p, l, f = rnd.choice(PEOPLE), rnd.choice(PLACES), rnd.choice(FRAMES)
        text = f.format(p=p, l=l)
        ents = []
        for s, lab in ((p, "person"), (l, "geo-loc")):
            i = text.index(s)
            ents.append((i, i + len(s), lab))
        out.append((text, ents))
    return out


def tiny_corpus(nlp: Language, n: int = 60, seed: int = 0) -> List[Example]:
    return [Example.from_dict(nlp.make_doc(t), {"entities": e}) for t, e in tiny_texts(n, seed)]


def small_model_config(decoder: str = "spacy_twitter_ner.CRFDecoder.v1", **features) -> Dict:
    feats = {"@architectures": "spacy_twitter_ner.TokenFeatures.v1", "lower": True, "min_freq": 1,
             "max_words": None, "char_window": 3, "max_chars": 20, "n_chars": 512, **SMALL_FEATURES}
    feats.update(features)
    return {
        "model": {
            "@architectures": "spacy_twitter_ner.BiLSTMTagger.v1",
            "features": feats,
            "encoder": {"@architectures": "spacy_twitter_ner.BiLSTMEncoder.v1", "depth": 1,
                        **dict(SMALL_ENCODER, nI=feats["width"])},
            "decoder": {"@architectures": decoder, "nO": None},
        }
    }


def train_tiny(config: Optional[Dict] = None, epochs: int = 12, n: int = 60, seed: int = 0,
               drop: float = 0.0, learn_rate: float = 0.01):
    """Train ``twitter_bilstm_ner`` (component ``config``, small CRF model by default) on the tiny
    corpus. Returns (nlp, examples, losses per epoch, F1 before training)."""
    from thinc.api import Adam, fix_random_seed

    fix_random_seed(seed)
    nlp = twitter_nlp()
    nlp.add_pipe("twitter_bilstm_ner", config=small_model_config() if config is None else config)
    exs = tiny_corpus(nlp, n=n, seed=seed)
    nlp.initialize(lambda: exs)
    f1_before = nlp.evaluate(exs)["ents_f"]
    optimizer = Adam(learn_rate)
    rnd = random.Random(seed)
    order = list(exs)
    history = []
    for _ in range(epochs):
        rnd.shuffle(order)
        losses: Dict[str, float] = {}
        for i in range(0, len(order), 8):
            nlp.update(order[i:i + 8], drop=drop, sgd=optimizer, losses=losses)
        history.append(losses["twitter_bilstm_ner"])
    return nlp, exs, history, f1_before


@pytest.fixture(scope="session")
def trained():
    """A small trained CRF pipeline, shared by the component tests (read-only!)."""
    nlp, exs, history, f1_before = train_tiny()
    return nlp, exs


@pytest.fixture(scope="session")
def tiny_helpers():
    """The plain helper functions, for tests that need to build their own corpora/models."""
    import types
    return types.SimpleNamespace(
        twitter_nlp=twitter_nlp, tiny_texts=tiny_texts, tiny_corpus=tiny_corpus,
        small_model_config=small_model_config, train_tiny=train_tiny,
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes a minute or more (still run by default)")
