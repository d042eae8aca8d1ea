"""Distillation, step 1: a teacher pipeline labels unlabeled tweets, once, to disk.

    python -m spacy_twitter_ner.training.teach CORPUS OUTPUT_DIR --raw FILE [FILE ...]
        [--teacher PATH] [--exclude FILE.spacy ...] [--limit N] [--workers 2]
        [--shard-size 2000] [--batch-size 128] [--training-dir training] [--corpus-dir corpus/CORPUS]

The teacher is ``--teacher``, else the accurate seed ensemble ``training/CORPUS-accurate-ensemble/
model-best`` when it exists, else ``training/CORPUS-accurate/model-best``. The raw files hold one
tweet per line; they are streamed in order and each line goes through:

* empty (white space only): skipped, counted;
* equal to a dev or test tweet of the corpus (``--exclude``, by default ``corpus/CORPUS/dev.spacy``
  and ``test.spacy``): dropped, counted. Compared on a normalised key (:func:`normalise`: all
  white space removed, HTML entities unescaped, case-folded), so a corpus tweet (its tokens joined
  by spaces) matches its raw string; and on a looser key (:func:`loose_key`: also URLs removed and
  every mention ``@user``, as TweetEval anonymised them) where that key still holds at least
  ``MIN_LOOSE_CHARS`` word characters (else every URL-only tweet would match);
* an exact duplicate of an earlier line (after stripping the line): dropped, counted;
* else annotated: the teacher's own ``nlp.make_doc`` gives the tokens, the pipeline sets its
  Viterbi path as ``doc.ents``, and ``doc.user_data[SOFT_TARGETS]`` holds its per-token tag
  distributions (CRF marginals; float16, ``(tokens, tags)``, columns = the component's ``.tags``).

Annotated tweets go, in input order, into fixed-size DocBin shards ``teach-00000.spacy``,
``teach-00001.spacy``, ... (``store_user_data=True``), each written by a worker process to a temp
name and renamed, with a sidecar ``teach-00000.json`` (tweet and word counts and a digest of the
teacher and the shard's input texts). A re-run skips every shard whose sidecar digest matches, so
an interrupted pass resumes where it stopped, a ``--limit`` run is the start of the full run, and a
changed teacher or input redoes the shards it changes. ``teach-summary.json`` records the teacher,
its labels and tags, the counts and the shards of the last run (the reader
``spacy_twitter_ner.DistillCorpus.v1`` reads only the shards listed there).

The teacher is slow (the accurate ensemble: ~1.3k words/s on one core), so ``--workers`` processes
(2 by default; 0 = in this process) each load it once, run torch on one thread and annotate whole
shards.
"""
import argparse
import hashlib
import html
import json
import os
import re
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple, Union

import numpy

COMPONENT = "twitter_bilstm_ner"
SHARD_PREFIX = "teach-"
SHARD_SUFFIX = ".spacy"
SUMMARY_FILE = "teach-summary.json"
DEFAULT_SHARD_SIZE = 2000
PathLike = Union[str, Path]

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"@\w+")
_SPACE = re.compile(r"\s+")
_NON_WORD = re.compile(r"\W")


# -- filtering --------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """The key two tweets are compared on: white space removed (a corpus doc is its tokens joined
    by spaces, a raw tweet is a string), HTML entities unescaped (a corpus may split ``&gt;``
    into tokens), case-folded."""
    return html.unescape(_SPACE.sub("", text)).casefold()


def loose_key(text: str) -> str:
    """:func:`normalise` after removing URLs (TweetEval lost many) and writing every mention
    ``@user`` (TweetEval's anonymisation)."""
    return normalise(_MENTION.sub("@user", _URL.sub("", text)))


# a loose key must hold this many word characters (mentions aside) to count: without URLs and
# mentions, short tweets ("@x https://t.co/y") would all look alike
MIN_LOOSE_CHARS = 15


def _informative(key: str) -> bool:
    return len(_NON_WORD.sub("", key.replace("@user", ""))) >= MIN_LOOSE_CHARS


class Exclusion:
    """The tweets never to annotate (a corpus's dev and test tweets): ``text in exclusion`` when
    its :func:`normalise` key equals one of theirs, or its informative :func:`loose_key` does."""

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self.keys: Set[str] = set()
        self.loose: Set[str] = set()
        self.n = 0
        for text in texts:
            self.add(text)

    def add(self, text: str) -> None:
        key = normalise(text)
        if key:
            self.n += 1
            self.keys.add(key)
            loose = loose_key(text)
            if _informative(loose):
                self.loose.add(loose)

    def __len__(self) -> int:
        return self.n

    def __contains__(self, text: str) -> bool:
        if normalise(text) in self.keys:
            return True
        return bool(self.loose) and loose_key(text) in self.loose


def excluded_tweets(paths: Iterable[PathLike]) -> Exclusion:
    """The tweets in ``paths``: .spacy files (or folders of them; a doc's text) or text files
    (one tweet per line)."""
    from spacy.tokens import DocBin
    from spacy.vocab import Vocab

    exclusion = Exclusion()
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"teach: the tweets to exclude, {path}, do not exist")
        files = sorted(path.rglob(f"*{SHARD_SUFFIX}")) if path.is_dir() else [path]
        for file in files:
            if file.suffix == SHARD_SUFFIX:
                texts: Iterable[str] = (doc.text for doc in DocBin().from_disk(file).get_docs(Vocab()))
            else:
                texts = file.read_text(encoding="utf8", errors="replace").split("\n")
            for text in texts:
                exclusion.add(text)
    return exclusion


@dataclass
class Counts:
    read: int = 0  # lines read from the raw files
    empty: int = 0  # white space only
    dropped_dev_test: int = 0  # equal (normalised) to a dev/test tweet
    dropped_duplicates: int = 0  # exact duplicates of an earlier line
    annotated: int = 0  # tweets in the shards of this run (== read - the three above)
    words: int = 0  # tokens of the annotated tweets
    shards: int = 0
    shards_reused: int = 0  # finished by an earlier run, skipped
    words_annotated_now: int = 0  # by this run (not in reused shards)
    seconds: float = 0.0  # this run's wall time
    # this run's plus that of the earlier (finished) runs whose shards it reused: the cost of the
    # whole pass (an interrupted run writes no summary, so its time is not counted)
    seconds_all_runs: float = 0.0

    @property
    def words_per_s(self) -> float:
        return self.words_annotated_now / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"teach: {self.read:,} tweets read, {self.dropped_dev_test:,} dropped as dev/test, "
            f"{self.dropped_duplicates:,} dropped as duplicates, {self.empty:,} empty, "
            f"{self.annotated:,} annotated ({self.shards} shards, {self.shards_reused} reused), "
            f"{self.words:,} words, {self.seconds:.1f} s, {self.words_per_s:,.0f} words/s"
        )


def read_tweets(inputs: Sequence[PathLike], excluded: Exclusion, counts: Counts, limit: int = 0) -> Iterator[str]:
    """The tweets to annotate, in input order: one per line (split on ``\\n`` only, stripped),
    without empty lines, dev/test tweets and duplicates (all counted in ``counts``); at most
    ``limit`` (0: all)."""
    seen: Set[bytes] = set()
    for path in inputs:
        with open(path, "rb") as f:
            for raw in f:
                if limit and counts.annotated >= limit:
                    return
                counts.read += 1
                text = raw.decode("utf8", errors="replace").strip()
                if not text:
                    counts.empty += 1
                    continue
                if excluded and text in excluded:
                    counts.dropped_dev_test += 1
                    continue
                digest = hashlib.blake2b(text.encode("utf8"), digest_size=16).digest()
                if digest in seen:
                    counts.dropped_duplicates += 1
                    continue
                seen.add(digest)
                counts.annotated += 1
                yield text


def count_lines(inputs: Sequence[PathLike]) -> int:
    n = 0
    for path in inputs:
        with open(path, "rb") as f:
            last = b""
            for block in iter(lambda: f.read(1 << 20), b""):
                n += block.count(b"\n")
                last = block
            n += bool(last) and not last.endswith(b"\n")
    return n


# -- the teacher ------------------------------------------------------------------------------


def default_teacher(corpus: str, training_dir: PathLike = "training") -> Path:
    """The accurate seed ensemble of ``corpus`` when it exists, else the accurate model."""
    training_dir = Path(training_dir)
    candidates = [training_dir / f"{corpus}-accurate-ensemble" / "model-best",
                  training_dir / f"{corpus}-accurate" / "model-best"]
    for path in candidates:
        if (path / "config.cfg").exists():
            return path
    raise FileNotFoundError(
        f"teach: no teacher for {corpus}: neither {candidates[0]} nor {candidates[1]} exists; train "
        f"one (`spacy project run train . --vars.corpus {corpus} --vars.config accurate`) or pass --teacher"
    )


def teacher_info(path: PathLike) -> Dict:
    """The teacher's component, labels and tags (read from its files, without loading it) and a
    checksum of its files."""
    from thinc.api import Config

    from ..models.bio import bio_tags

    path = Path(path)
    if not (path / "config.cfg").exists():
        raise FileNotFoundError(f"teach: the teacher {path} is not a pipeline directory (no config.cfg)")
    config = Config().from_disk(path / "config.cfg", interpolate=False)
    names = [n for n in config["nlp"]["pipeline"]
             if config["components"].get(n, {}).get("factory") == COMPONENT]
    if not names:
        raise ValueError(f"teach: the teacher {path} has no {COMPONENT} component (pipeline: {config['nlp']['pipeline']})")
    name = names[0]
    labels = list(json.loads((path / name / "cfg").read_text(encoding="utf8"))["labels"])
    md5 = hashlib.md5()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        md5.update(file.relative_to(path).as_posix().encode("utf8") + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                md5.update(block)
    return {"path": str(path), "component": name, "labels": labels, "tags": bio_tags(labels),
            "checksum": md5.hexdigest()}


def _earlier_seconds(output: Path, checksum: str) -> float:
    """The wall time of the finished earlier runs of this teacher into ``output`` (their summary,
    read before this run overwrites it); 0 when there is none or another teacher wrote it."""
    path = output / SUMMARY_FILE
    if not path.is_file():
        return 0.0
    try:
        earlier = json.loads(path.read_text(encoding="utf8"))
    except ValueError:
        return 0.0
    counts = earlier.get("counts") or {}
    if earlier.get("teacher_checksum") != checksum or not earlier.get("complete"):
        return 0.0
    return float(counts.get("seconds_all_runs") or counts.get("seconds") or 0.0)


class Teacher:
    """A loaded teacher pipeline that labels tweets."""

    def __init__(self, path: PathLike, batch_size: int = 128) -> None:
        import spacy

        from ..component import TwitterBiLSTMNER

        self.nlp = spacy.load(path)
        names = [n for n, p in self.nlp.pipeline if isinstance(p, TwitterBiLSTMNER)]
        if not names:
            raise ValueError(f"teach: the teacher {path} has no {COMPONENT} component")
        self.name = names[0]
        self.ner = self.nlp.get_pipe(self.name)
        self.tags = list(self.ner.tags)
        self.batch_size = batch_size

    def _label(self, docs: List) -> List[numpy.ndarray]:
        """Set the Viterbi path as ``doc.ents`` and return the tag distributions, from one model
        pass (``predict`` gives both)."""
        preds = self.ner.predict(docs)
        self.ner.set_annotations(docs, preds)
        return [numpy.asarray(probs) for _, probs in preds]

    def annotate(self, texts: Sequence[str]) -> List:
        from ..component import SOFT_TARGETS

        out = []
        for i in range(0, len(texts), self.batch_size):
            docs = [self.nlp.make_doc(t) for t in texts[i:i + self.batch_size]]
            probs: List[numpy.ndarray] = []
            for name, proc in self.nlp.pipeline:
                if name == self.name:
                    probs = self._label(docs)
                else:
                    docs = list(proc.pipe(docs)) if hasattr(proc, "pipe") else [proc(d) for d in docs]
            for doc, p in zip(docs, probs):
                if p.shape != (len(doc), len(self.tags)):
                    raise ValueError(f"teach: the teacher gave distributions of shape {p.shape} for a "
                                     f"tweet of {len(doc)} tokens and {len(self.tags)} tags")
                doc.user_data.clear()  # span._.score values: not needed, they would bloat the shards
                doc.user_data[SOFT_TARGETS] = p.astype(numpy.float16)
                out.append(doc)
        return out


# -- shards -----------------------------------------------------------------------------------


def shard_name(index: int) -> str:
    return f"{SHARD_PREFIX}{index:05d}{SHARD_SUFFIX}"


def shard_digest(teacher_checksum: str, texts: Sequence[str]) -> str:
    h = hashlib.sha1(teacher_checksum.encode("utf8"))
    for text in texts:
        h.update(b"\n" + text.encode("utf8"))
    return h.hexdigest()


def _sidecar(output: Path, index: int) -> Path:
    return output / shard_name(index).replace(SHARD_SUFFIX, ".json")


def finished_shard(output: Path, index: int, digest: str) -> Optional[Dict]:
    """The sidecar of shard ``index`` when the shard exists and was made from the same teacher
    and texts, else None."""
    sidecar = _sidecar(output, index)
    if not (output / shard_name(index)).exists() or not sidecar.exists():
        return None
    try:
        info = json.loads(sidecar.read_text(encoding="utf8"))
    except ValueError:
        return None
    return info if info.get("digest") == digest else None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_shard(output: Path, index: int, digest: str, docs: Sequence, seconds: float) -> Dict:
    from spacy.tokens import DocBin

    words = sum(len(doc) for doc in docs)
    _write_atomic(output / shard_name(index), DocBin(store_user_data=True, docs=docs).to_bytes())
    info = {"shard": shard_name(index), "tweets": len(docs), "words": words, "seconds": round(seconds, 3),
            "digest": digest}
    _write_atomic(_sidecar(output, index), json.dumps(info).encode("utf8"))
    return info


# worker processes: each loads the teacher once
_WORKER: Dict = {}


def _init_worker(teacher: str, batch_size: int, output: str) -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER["teacher"] = Teacher(teacher, batch_size=batch_size)
    _WORKER["output"] = Path(output)


def _annotate_shard(index: int, digest: str, texts: List[str]) -> Dict:
    start = time.perf_counter()
    docs = _WORKER["teacher"].annotate(texts)
    return write_shard(_WORKER["output"], index, digest, docs, time.perf_counter() - start)


def _shards(tweets: Iterator[str], size: int) -> Iterator[Tuple[int, List[str]]]:
    batch: List[str] = []
    index = 0
    for text in tweets:
        batch.append(text)
        if len(batch) == size:
            yield index, batch
            index, batch = index + 1, []
    if batch:
        yield index, batch


def _write_summary(output: Path, data: Dict) -> None:
    _write_atomic(output / SUMMARY_FILE, (json.dumps(data, indent=2) + "\n").encode("utf8"))


def teach(output: PathLike, inputs: Sequence[PathLike], teacher: PathLike, *,
          exclude: Sequence[PathLike] = (), limit: int = 0, shard_size: int = DEFAULT_SHARD_SIZE,
          workers: int = 2, batch_size: int = 128, progress: bool = True) -> Counts:
    """Annotate the tweets of ``inputs`` with ``teacher`` into shards in ``output`` (see the
    module docstring); returns the counts (also written to ``teach-summary.json``)."""
    from tqdm import tqdm

    start = time.perf_counter()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    for tmp in output.glob(f".{SHARD_PREFIX}*.tmp"):  # left by an interrupted run
        tmp.unlink()
    inputs = [Path(p) for p in inputs]
    for path in inputs:
        if not path.is_file():
            raise FileNotFoundError(f"teach: the raw tweets {path} do not exist")
    if shard_size < 1:
        raise ValueError("teach: --shard-size must be at least 1")
    info = teacher_info(teacher)
    earlier_seconds = _earlier_seconds(output, info["checksum"])
    excluded = excluded_tweets(exclude)
    summary = {
        "teacher": info["path"], "component": info["component"], "labels": info["labels"],
        "tags": info["tags"], "teacher_checksum": info["checksum"], "inputs": [str(p) for p in inputs],
        "exclude": [str(p) for p in exclude], "excluded_tweets": len(excluded), "limit": limit,
        "shard_size": shard_size, "complete": False,
    }
    _write_summary(output, summary)
    counts = Counts()
    shards: Dict[int, Dict] = {}
    bar = tqdm(total=limit or count_lines(inputs), unit="tweet", desc="teach", disable=not progress,
               dynamic_ncols=True)

    def done(result: Dict, index: int, reused: bool) -> None:
        shards[index] = result
        counts.shards_reused += reused
        counts.words_annotated_now += 0 if reused else result["words"]
        bar.update(result["tweets"])
        bar.set_postfix(words_s=f"{counts.words_annotated_now / max(time.perf_counter() - start, 1e-9):,.0f}")

    jobs = _shards(read_tweets(inputs, excluded, counts, limit), shard_size)
    try:
        if workers <= 0:
            model: Optional[Teacher] = None
            for index, texts in jobs:
                digest = shard_digest(info["checksum"], texts)
                found = finished_shard(output, index, digest)
                if found is not None:
                    done(found, index, True)
                    continue
                if model is None:
                    model = Teacher(teacher, batch_size=batch_size)
                t0 = time.perf_counter()
                docs = model.annotate(texts)
                done(write_shard(output, index, digest, docs, time.perf_counter() - t0), index, False)
        else:
            import multiprocessing

            pending: Dict[Future, int] = {}
            with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_init_worker,
                                     initargs=(str(teacher), batch_size, str(output))) as pool:
                try:
                    for index, texts in jobs:
                        digest = shard_digest(info["checksum"], texts)
                        found = finished_shard(output, index, digest)
                        if found is not None:
                            done(found, index, True)
                            continue
                        while len(pending) >= 2 * workers:  # stream: a few shards queued at most
                            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                            for fut in finished:
                                done(fut.result(), pending.pop(fut), False)
                        pending[pool.submit(_annotate_shard, index, digest, texts)] = index
                    for fut in list(pending):
                        done(fut.result(), pending.pop(fut), False)
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        bar.total = bar.n
        bar.close()
    counts.shards = len(shards)
    counts.words = sum(s["words"] for s in shards.values())
    assert counts.annotated == sum(s["tweets"] for s in shards.values())
    assert counts.read == counts.empty + counts.dropped_dev_test + counts.dropped_duplicates + counts.annotated
    counts.seconds = time.perf_counter() - start
    counts.seconds_all_runs = counts.seconds + (earlier_seconds if counts.shards_reused else 0.0)
    summary.update(
        complete=True,
        counts=dict(asdict(counts), words_per_s=round(counts.words_per_s, 1), seconds=round(counts.seconds, 2),
                    seconds_all_runs=round(counts.seconds_all_runs, 2)),
        shards=[{k: shards[i][k] for k in ("shard", "tweets", "words")} for i in sorted(shards)],
    )
    _write_summary(output, summary)
    return counts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m spacy_twitter_ner.training.teach", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", help="the corpus name (picks the teacher and the dev/test tweets to exclude)")
    parser.add_argument("output", type=Path, help="folder for the shards (assets/silver/CORPUS)")
    parser.add_argument("--raw", type=Path, nargs="+", required=True, help="raw tweet files, one tweet per line")
    parser.add_argument("--teacher", type=Path, default=None,
                        help="teacher pipeline (default: training/CORPUS-accurate-ensemble/model-best, "
                             "else training/CORPUS-accurate/model-best)")
    parser.add_argument("--training-dir", type=Path, default=Path("training"))
    parser.add_argument("--corpus-dir", type=Path, default=None, help="default: corpus/CORPUS")
    parser.add_argument("--exclude", type=Path, nargs="*", default=None,
                        help="tweets never to annotate (default: CORPUS-DIR/dev.spacy and test.spacy)")
    parser.add_argument("--limit", type=int, default=0, help="annotate at most N tweets (0: all)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (0: this process)")
    parser.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    from wasabi import msg

    args = build_parser().parse_args(argv)
    try:
        teacher = args.teacher if args.teacher is not None else default_teacher(args.corpus, args.training_dir)
        if args.exclude is None:
            corpus_dir = args.corpus_dir or Path("corpus") / args.corpus
            args.exclude = [corpus_dir / "dev.spacy", corpus_dir / "test.spacy"]
        msg.info(f"teacher: {teacher}; excluding the tweets of {', '.join(map(str, args.exclude)) or 'nothing'}")
        counts = teach(args.output, args.raw, teacher, exclude=args.exclude, limit=args.limit,
                       shard_size=args.shard_size, workers=args.workers, batch_size=args.batch_size,
                       progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as err:
        msg.fail(str(err))
        return 1
    msg.good(counts.line())
    msg.text(f"-> {args.output}/{SUMMARY_FILE}")
    return 0


if __name__ == "__main__":
    # run the module's own copy, so that the worker functions pickle by their importable name
    from spacy_twitter_ner.training.teach import main as _main

    sys.exit(_main())
