"""The seed tutorial divides the learning rate by sqrt(2) after each epoch. thinc schedules only
see steps, so a ``before_update`` callback (which spaCy's training loop gives the epoch) keeps an
epoch clock that the schedule reads. The rate for the first step of a new epoch is the previous
epoch's (spaCy steps schedules after each update), a one-step lag out of ~180 per epoch."""
from typing import Any, Callable, Dict, Iterator

from spacy.language import Language
from spacy.util import registry


class EpochClock:
    epoch: int = 0


_CLOCK = EpochClock()


def set_epoch(epoch: int) -> None:
    """Tell the schedules which epoch the training loop is in."""
    _CLOCK.epoch = epoch


@registry.callbacks("spacy_twitter_ner.epoch_clock.v1")
def create_epoch_clock() -> Callable[[Language, Dict[str, Any]], None]:
    """``[training.before_update]``: tell the schedules which epoch the loop is in (kept for
    configs written before ``spacy_twitter_ner.before_update.v1``, which also trims the heap)."""
    _CLOCK.epoch = 0

    def before_update(nlp: Language, args: Dict[str, Any]) -> None:
        _CLOCK.epoch = int(args["epoch"])

    return before_update


@registry.schedules("spacy_twitter_ner.epoch_decay.v1")
def epoch_decay(initial_rate: float, decay: float) -> Iterator[float]:
    """``initial_rate * decay ** epoch``; needs ``spacy_twitter_ner.epoch_clock.v1`` as
    ``[training.before_update]`` (without it, the rate stays at ``initial_rate``)."""
    _CLOCK.epoch = 0
    while True:
        yield initial_rate * decay ** _CLOCK.epoch
