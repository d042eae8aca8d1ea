"""Switch int8 LSTM prediction on (or off) in a trained pipeline, without retraining.

    python scripts/quantize_pipeline.py MODEL [--off]

``quantize`` of ``spacy_twitter_ner.BiLSTMEncoder.v1`` only changes how a CPU predicts (an int8
copy of the LSTM weights, made at the first prediction; the saved weights stay float32), so a
pipeline trained before the setting existed, or with it off, can take it like ``tune`` writes an
``outside_bias``: this sets it on every BiLSTM encoder in MODEL/config.cfg, then loads MODEL
to check it. Run ``tune``/``evaluate`` after it: predictions change slightly.
"""
import argparse
import sys
from pathlib import Path
from typing import Any, List, Optional

from thinc.api import Config
from wasabi import msg

ENCODER = "spacy_twitter_ner.BiLSTMEncoder.v1"


def set_quantize(node: Any, value: bool, where: str = "") -> List[str]:
    """Set ``quantize`` in every BiLSTMEncoder.v1 block under ``node``; the blocks' paths."""
    found: List[str] = []
    if isinstance(node, dict):
        if node.get("@architectures") == ENCODER:
            node["quantize"] = value
            found.append(where)
        for key, child in node.items():
            found += set_quantize(child, value, f"{where}.{key}" if where else str(key))
    return found


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="a saved pipeline folder (e.g. training/wnut17-distilled/model-best)")
    parser.add_argument("--off", action="store_true", help="predict in float32 again")
    args = parser.parse_args(argv)
    path = args.model / "config.cfg"
    if not path.exists():
        msg.fail(f"{path} not found: MODEL must be a saved pipeline folder")
        return 1
    config = Config().from_disk(path, interpolate=False)
    found = set_quantize(config, not args.off)
    if not found:
        msg.fail(f"{path}: no {ENCODER} block, nothing to set")
        return 1
    config.to_disk(path, interpolate=False)
    import spacy

    spacy.load(args.model)  # the edited config still loads with the saved weights
    msg.good(f"quantize = {str(not args.off).lower()} in {path} ({', '.join(found)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
