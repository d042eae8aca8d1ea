"""scripts/quantize_pipeline.py: int8 prediction switched on in a trained, saved pipeline."""

import spacy

from conftest import load_script

NAME = "twitter_bilstm_ner"


def _script():
    return load_script("quantize_pipeline")


def signature(doc):
    return [(e.start, e.end, e.label_) for e in doc.ents]


def test_switches_a_saved_pipeline_to_int8_and_back(trained, tmp_path):
    nlp, exs = trained
    path = tmp_path / "pipeline"
    nlp.to_disk(path)
    script = _script()
    texts = [eg.reference.text for eg in exs]
    before = [signature(d) for d in spacy.load(path).pipe(texts)]
    assert script.main([str(path)]) == 0
    loaded = spacy.load(path)
    encoder = loaded.get_pipe(NAME).model.get_ref("encoder").shims[0]._model
    assert encoder.quantize
    after = [signature(d) for d in loaded.pipe(texts)]
    assert encoder._int8  # the int8 copy predicted
    same = sum(a == b for a, b in zip(before, after))
    assert same >= 0.9 * len(texts), f"int8 changed the entities of {len(texts) - same} of {len(texts)} tweets"
    assert script.main([str(path), "--off"]) == 0
    assert not spacy.load(path).get_pipe(NAME).model.get_ref("encoder").shims[0]._model.quantize


def test_refuses_a_folder_without_an_encoder(tmp_path):
    script = _script()
    assert script.main([str(tmp_path)]) == 1  # no config.cfg
    spacy.blank("en").to_disk(tmp_path / "blank")
    assert script.main([str(tmp_path / "blank")]) == 1  # no BiLSTM encoder
