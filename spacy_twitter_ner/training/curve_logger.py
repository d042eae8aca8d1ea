"""A training logger for the tutorial's figure (P/R/F1 per entity type on train and dev over
training): spaCy's console table as usual, plus one JSON line per evaluation with the dev scores
spaCy computed and the same scores on a fixed sample of the training tweets."""
import random
from pathlib import Path
from typing import IO, Any, Callable, Dict, List, Optional, Tuple

import srsly
from spacy.language import Language
from spacy.training import Corpus, Example
from spacy.training.loggers import console_logger_v3
from spacy.util import registry


@registry.loggers("spacy_twitter_ner.CurveLogger.v1")
def curve_logger(
    output_file: Optional[str] = None,
    train_path: Optional[str] = None,
    train_sample: int = 500,
    progress_bar: Optional[str] = None,
) -> Callable:
    """``output_file``: the JSON Lines log (overwritten at each run; none when null); ``train_path``: the
    training corpus (.spacy) to draw a fixed sample of ``train_sample`` tweets from (seeded by
    ``[training] seed``), scored at every evaluation."""
    console = console_logger_v3(progress_bar=progress_bar, console_output=True, output_file=None)

    def setup(nlp: Language, stdout: IO, stderr: IO) -> Tuple[Callable, Callable]:
        log_console, finalize_console = console(nlp, stdout, stderr)
        if not output_file:
            return log_console, finalize_console
        path = Path(output_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        stream = path.open("w", encoding="utf8")
        sample: List[Example] = []
        if train_path and train_sample > 0:
            examples = list(Corpus(train_path, gold_preproc=True)(nlp))
            rng = random.Random(nlp.config["training"]["seed"])
            sample = rng.sample(examples, min(train_sample, len(examples)))

        def log_step(info: Optional[Dict[str, Any]]) -> None:
            log_console(info)
            if info is None or info.get("score") is None:
                return
            record = {
                "epoch": info["epoch"],
                "step": info["step"],
                "seconds": info["seconds"],
                "words": info["words"],
                "losses": info["losses"],
                "score": info["score"],
                "dev": _ent_scores(info.get("other_scores") or {}),
            }
            if sample:
                record["train"] = _ent_scores(nlp.evaluate(sample))
            stream.write(srsly.json_dumps(record) + "\n")
            stream.flush()

        def finalize() -> None:
            finalize_console()
            stream.close()

        return log_step, finalize

    return setup


def _ent_scores(scores: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "ents_p": scores.get("ents_p"),
        "ents_r": scores.get("ents_r"),
        "ents_f": scores.get("ents_f"),
        "ents_per_type": scores.get("ents_per_type") or {},
    }
