"""`spacy package` makes a pipeline package that installs and loads in a FRESH virtual environment
holding only that package, spacy-twitter-ner (a wheel built from this checkout), the CPU build
of torch and what pip resolves for them.

Slow (a venv and a pip install: about 1-3 minutes with pip's cache), marked ``slow``, run by
default; deselect with ``-m "not slow"``.
"""
import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest
import srsly

from conftest import train_tiny

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
for _var in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"):
    ENV.pop(_var, None)
NAME, VERSION = "tiny_twitter", "0.0.1"
PACKAGE = f"en_{NAME}"  # spaCy prefixes the pipeline's language


def _run(cmd, cwd, timeout=300, env=ENV):
    started = time.perf_counter()
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, env=env)
    seconds = time.perf_counter() - started
    assert result.returncode == 0, (
        f"{' '.join(map(str, cmd))} -> exit {result.returncode}\n--- stdout\n{result.stdout[-5000:]}"
        f"\n--- stderr\n{result.stderr[-5000:]}")
    print(f"[{seconds:5.1f}s] {' '.join(map(str, cmd))[:150]}")
    return result


def _new_venv(path: Path) -> Path:
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(path)
    except Exception as err:  # e.g. Debian's python without ensurepip
        pytest.skip(f"cannot create a virtual environment with pip ({type(err).__name__}: {err})")
    python = path / "bin" / "python"
    if not python.exists():
        pytest.skip(f"venv at {path} has no bin/python")
    return python


def test_packaged_pipeline_installs_and_loads_in_a_fresh_venv(tmp_path):
    # 1. a tiny trained pipeline on disk
    nlp, *_ = train_tiny(epochs=6, n=40)
    model_dir = tmp_path / "model"
    nlp.to_disk(model_dir)
    expected = [(e.text, e.label_) for e in nlp("Lady Gaga in Paris").ents]

    # 2. spacy package (sdist; no `build`/`wheel` needed, spaCy falls back to setup.py sdist)
    out = tmp_path / "packages"
    out.mkdir()
    _run([sys.executable, "-m", "spacy", "package", model_dir, out, "--name", NAME, "--version", VERSION,
          "--force"], cwd=tmp_path)
    pkg_dir = out / f"{PACKAGE}-{VERSION}"
    meta = srsly.read_json(pkg_dir / "meta.json")
    reqs = meta["requirements"]
    print("requirements written by spacy package:", reqs)
    # detected from the entry points of the registered factory/architectures/tokenizer
    assert any(r.startswith("spacy-twitter-ner>=") for r in reqs), reqs
    assert any(r.startswith("spacy>=") for r in reqs), reqs
    sdists = list((pkg_dir / "dist").glob("*.tar.gz"))
    assert len(sdists) == 1, list((pkg_dir / "dist").iterdir())

    # 3. a wheel of this plugin, built from a snapshot of the sources (nothing written into the repo)
    src = tmp_path / "src"
    src.mkdir()
    shutil.copyfile(ROOT / "setup.py", src / "setup.py")
    shutil.copyfile(ROOT / "README.md", src / "README.md")
    shutil.copytree(ROOT / "spacy_twitter_ner", src / "spacy_twitter_ner",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, src],
         cwd=tmp_path)
    plugin_wheels = list(wheels.glob("spacy_twitter_ner-*.whl"))
    assert len(plugin_wheels) == 1, list(wheels.iterdir())

    # 4. a fresh venv with only these, pip resolving the rest
    python = _new_venv(tmp_path / "venv")
    _run([python, "-m", "pip", "install", "--quiet", sdists[0], plugin_wheels[0], "torch==2.13.0"],
         cwd=tmp_path, timeout=600)

    # 5. load by package name, outside the repository
    code = (
        "import spacy, spacy_twitter_ner, sys\n"
        f"nlp = spacy.load({PACKAGE!r})\n"
        "print(spacy_twitter_ner.__file__)\n"
        "print([(e.text, e.label_) for e in nlp('Lady Gaga in Paris').ents])\n"
    )
    result = _run([python, "-c", code], cwd=tmp_path, timeout=180)
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(str(tmp_path / "venv")), f"not the venv's copy: {lines[0]}"
    assert lines[-1] == repr(expected)
