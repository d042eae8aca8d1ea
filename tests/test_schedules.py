"""The epoch-based learning-rate decay (spacy_twitter_ner.training.schedules): the rate follows
the epoch clock that a ``[training.before_update]`` callback keeps."""
import pytest
from spacy.util import registry

from spacy_twitter_ner.training import schedules
from spacy_twitter_ner.training.schedules import create_epoch_clock, epoch_decay, set_epoch


@pytest.fixture(autouse=True)
def _reset_clock():
    set_epoch(0)
    yield
    set_epoch(0)


def test_epoch_decay_follows_the_epoch_clock():
    rates = epoch_decay(0.01, 0.5)
    assert next(rates) == pytest.approx(0.01)
    assert next(rates) == pytest.approx(0.01)  # steps alone change nothing
    set_epoch(1)
    assert next(rates) == pytest.approx(0.005)
    set_epoch(3)
    assert next(rates) == pytest.approx(0.01 * 0.5 ** 3)
    set_epoch(0)
    assert next(rates) == pytest.approx(0.01)


def test_a_new_schedule_starts_at_epoch_zero():
    """(its first rate is drawn at the first update, so a clock left over from an earlier
    training run in this process is reset)"""
    set_epoch(5)
    assert next(epoch_decay(0.1, 0.5)) == pytest.approx(0.1)
    assert schedules._CLOCK.epoch == 0


def test_epoch_clock_callback_sets_the_epoch():
    rates = epoch_decay(1.0, 2 ** -0.5)
    assert next(rates) == pytest.approx(1.0)
    callback = create_epoch_clock()
    callback(None, {"epoch": 2, "step": 100})
    assert next(rates) == pytest.approx(0.5)


def test_registered():
    rates = registry.resolve({"s": {"@schedules": "spacy_twitter_ner.epoch_decay.v1", "initial_rate": 0.002, "decay": 0.9}})["s"]
    callback = registry.resolve({"c": {"@callbacks": "spacy_twitter_ner.epoch_clock.v1"}})["c"]
    assert next(rates) == pytest.approx(0.002)
    callback(None, {"epoch": 2})
    assert next(rates) == pytest.approx(0.002 * 0.81)
