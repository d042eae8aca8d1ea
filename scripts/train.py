"""Train configs/CONFIG.cfg on the project's corpus/CORPUS with `spacy train` (project.yml's
`train` command).

    python scripts/train.py CORPUS CONFIG [--seed N] [--gpu-id N] [spacy train overrides...]

Writes training/<corpus>-<config>/model-best, model-last, train_log.jsonl and train_time.json (the
wall-clock seconds of the whole `spacy train` run: the log's last record is the last evaluation,
which can be steps before the end). The static vectors
(assets/vectors/<corpus>-minilm-256) and the gazetteer lists (assets/lexicons) are passed when the
config uses them (scripts/commands.py builds the command line); anything not recognised here,
e.g. `--training.max_epochs 5`, goes to `spacy train` unchanged.
"""
import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

import srsly
from wasabi import msg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from commands import TRAIN_TIME, project_paths, project_train_command  # noqa: E402


def build(argv: Optional[List[str]] = None) -> List[str]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("corpus")
    parser.add_argument("config", help="name of a file in configs/ (without .cfg)")
    parser.add_argument("--seed", type=int, default=None, help="[system] seed (default: the config's)")
    parser.add_argument("--gpu-id", type=int, default=-1)
    args, overrides = parser.parse_known_args(argv)
    overrides = [a for a in overrides if a != "--"]
    paths = project_paths(args.corpus, args.config)
    if not paths.config.is_file():
        parser.error(f"config {paths.config} does not exist")
    return project_train_command(paths, seed=args.seed, gpu_id=args.gpu_id, overrides=overrides)


def main(argv: Optional[List[str]] = None) -> int:
    cmd = build(argv)
    msg.info(" ".join(cmd))
    sys.stdout.flush()
    start = time.perf_counter()
    returncode = subprocess.run(cmd).returncode
    output = Path(cmd[cmd.index("--output") + 1])
    if returncode == 0 and output.is_dir():
        srsly.write_json(output / TRAIN_TIME, {"train_seconds": round(time.perf_counter() - start, 1), "command": cmd})
    return returncode


if __name__ == "__main__":
    sys.exit(main())
