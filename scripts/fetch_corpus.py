"""Put a corpus's train/dev/test.conll into assets/<corpus>/ from a local folder (the offline
route), checking the public corpora against the sha256 recorded in project.yml. When the folder
does not exist, the files that `spacy project assets` downloaded are checked and used instead."""
import hashlib
import shutil
import sys
from pathlib import Path

import srsly
from wasabi import msg

SPLITS = ("train", "dev", "test")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(src_dir: str, dest_dir: str) -> int:
    src, dest = Path(src_dir), Path(dest_dir)
    project = srsly.read_yaml(Path(__file__).parents[1] / "project.yml")
    known = {a["dest"]: a.get("sha256") for a in project.get("assets", []) if "dest" in a}
    if not src.is_dir():
        if all((dest / f"{s}.conll").exists() for s in SPLITS):
            msg.info(f"{src} does not exist; using the files already in {dest}")
            src = dest
        else:
            msg.fail(
                f"data_dir {src} does not exist and {dest} has no train/dev/test.conll",
                "Pass --vars.data_dir FOLDER (a folder with train.conll, dev.conll and test.conll), "
                "or download the public corpora with `spacy project assets`.",
            )
            return 1
    missing = [str(src / f"{s}.conll") for s in SPLITS if not (src / f"{s}.conll").exists()]
    if missing:
        msg.fail("missing input file(s): " + ", ".join(missing))
        return 1
    dest.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        source, target = src / f"{split}.conll", dest / f"{split}.conll"
        expected = known.get(f"{dest.as_posix()}/{split}.conll")
        if expected and sha256(source) != expected:
            msg.fail(f"{source}: sha256 differs from the one in project.yml ({expected[:12]}...): a damaged or different file")
            return 1
        if source.resolve() != target.resolve():
            shutil.copyfile(source, target)
        msg.good(f"{target} ({'checksum ok' if expected else 'own data, no checksum'})")
    return 0


def extras(src_dir: str, dest_dir: str) -> int:
    """Raw tweets (tweets.txt, and tweeteval.txt where the source has it) and gazetteer lists,
    checked against project.yml where a sha256 is recorded."""
    src, dest = Path(src_dir), Path(dest_dir)
    project = srsly.read_yaml(Path(__file__).parents[1] / "project.yml")
    known = {a["dest"]: a.get("sha256") for a in project.get("assets", []) if "dest" in a}
    raw_src, raw_dest = src / "raw_tweets" / "tweets.txt", dest / "raw_tweets" / "tweets.txt"
    lex_src, lex_dest = src / "lexicons", dest / "lexicons"
    if not raw_src.exists() and raw_dest.exists() and lex_dest.is_dir():
        msg.info(f"{src} has no raw tweets; using the files already in {dest}")
        return 0
    if not raw_src.exists() or not lex_src.is_dir():
        msg.fail(f"{src} has no raw_tweets/tweets.txt or lexicons/; pass --vars.shared_dir or run `spacy project assets`")
        return 1
    raws = [(raw_src, raw_dest)]
    more = src / "raw_tweets" / "tweeteval.txt"
    if more.exists():  # optional: only the distillation and scaling commands read it
        raws.append((more, dest / "raw_tweets" / "tweeteval.txt"))
    for source, target in raws:
        expected = known.get(target.as_posix())
        if expected and sha256(source) != expected:
            msg.fail(f"{source}: sha256 differs from the one in project.yml")
            return 1
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    lex_dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(lex_src.iterdir()):
        if path.is_file():  # plain copies: the read-only mode of the source is not carried over
            shutil.copyfile(path, lex_dest / path.name)
    copied = ", ".join(str(target) for _, target in raws)
    msg.good(f"{copied} and {lex_dest} ({len(list(lex_dest.iterdir()))} lists)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--extras":
        sys.exit(extras(sys.argv[2], sys.argv[3]))
    if len(sys.argv) != 3:
        msg.fail("usage: python scripts/fetch_corpus.py DATA_DIR DEST_DIR | --extras SHARED_DIR ASSETS_DIR")
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
