"""``spacy_twitter_ner.before_update.v1`` (spacy_twitter_ner.training.callbacks): the epoch clock
for ``epoch_decay.v1`` plus heap trimming every N steps."""
import pytest
from spacy.util import registry

from spacy_twitter_ner.training import callbacks
from spacy_twitter_ner.training.callbacks import create_before_update
from spacy_twitter_ner.training.schedules import epoch_decay, set_epoch


@pytest.fixture(autouse=True)
def _reset_clock():
    set_epoch(0)
    yield
    set_epoch(0)


@pytest.fixture()
def trims(monkeypatch):
    calls = []
    monkeypatch.setattr(callbacks, "trim_heap", lambda: calls.append(1) or True)
    return calls


def test_before_update_sets_the_epoch(trims):
    rates = epoch_decay(0.01, 0.5)
    before_update = create_before_update(trim_every=20)
    before_update(None, {"epoch": 0, "step": 0})
    assert next(rates) == pytest.approx(0.01)  # the first update, in epoch 0
    before_update(None, {"epoch": 2, "step": 7})
    assert next(rates) == pytest.approx(0.0025)
    before_update(None, {"epoch": 3, "step": 8})
    assert next(rates) == pytest.approx(0.00125)


@pytest.mark.parametrize("every,expected", [(20, 2), (7, 6), (1, 45), (0, 0)])
def test_before_update_trims_every_n_steps(trims, every, expected):
    before_update = create_before_update(trim_every=every)
    for step in range(46):  # steps 0..45; never at step 0
        before_update(None, {"epoch": step // 10, "step": step})
    assert len(trims) == expected


def test_before_update_without_a_step(trims):
    create_before_update(trim_every=1)(None, {"epoch": 1})
    assert trims == []


def test_creating_the_callback_resets_the_clock():
    rates = epoch_decay(1.0, 0.5)
    assert next(rates) == pytest.approx(1.0)
    set_epoch(4)
    assert next(rates) == pytest.approx(1.0 / 16)
    create_before_update()
    assert next(rates) == pytest.approx(1.0)


def test_registered(trims):
    before_update = registry.resolve({"c": {"@callbacks": "spacy_twitter_ner.before_update.v1", "trim_every": 2}})["c"]
    rates = epoch_decay(1.0, 0.5)
    assert next(rates) == pytest.approx(1.0)
    before_update(None, {"epoch": 1, "step": 4})
    assert len(trims) == 1
    assert next(rates) == pytest.approx(0.5)
