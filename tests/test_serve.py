"""``spacy-twitter-ner serve``: endpoints, JSON errors with the right codes, concurrent requests
answered exactly as sequential ``nlp`` calls, ``main``'s errors, and the page in a real browser."""
import json
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

import spacy  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from spacy_twitter_ner.cli import serve  # noqa: E402
from spacy_twitter_ner.cli.tag import doc_to_json, tag_lines  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
MAX_TEXTS, MAX_CHARS = 8, 120

TEXTS = [
    "Lady Gaga is in Paris tonight",
    "",
    "omg Tom Brady just landed in Tokyo !!",
    "   ",
    "@fan saw Adele at Madison Square Garden http://t.co/q 😀",
    "nothing here",
    "Boston loves Barack Obama",
    "can't wait for Carmelo Anthony in New York #live",
]


@pytest.fixture(scope="module")
def model(tmp_path_factory, tiny_helpers):
    """(nlp as the server loads it, its directory). Dropout in the model, so that a prediction
    that ran in training mode (or flipped another thread into it) would show."""
    config = tiny_helpers.small_model_config(dropout=0.3)
    if "dropout" in config["model"]["encoder"]:
        config["model"]["encoder"]["dropout"] = 0.3
    nlp, _, _, _ = tiny_helpers.train_tiny(config, epochs=8, drop=0.1)
    path = tmp_path_factory.mktemp("serve") / "model"
    nlp.to_disk(path)
    return spacy.load(path), path


@pytest.fixture(scope="module")
def client(model):
    app = serve.create_app(model[0], max_texts=MAX_TEXTS, max_chars=MAX_CHARS, threads=4, source="tiny")
    with TestClient(app) as c:
        yield c


def reference(nlp, texts):
    """What ``spacy-twitter-ner tag`` writes for these texts: one sequential ``nlp.pipe``."""
    return list(tag_lines(nlp, texts, batch_size=serve.DEFAULT_BATCH_SIZE, n_process=1))


# -- endpoints ----------------------------------------------------------------------------------


def test_health(client):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["model"]["labels"] == ["geo-loc", "person"]
    assert body["model"]["pipeline"] == ["twitter_bilstm_ner"]
    assert body["model"]["source"] == "tiny"
    assert body["limits"]["max_texts"] == MAX_TEXTS and body["limits"]["max_chars"] == MAX_CHARS


def test_ner_same_json_as_cli(client, model):
    r = client.post("/ner", json={"texts": TEXTS})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    results = r.json()["results"]
    assert results == reference(model[0], TEXTS)
    assert [res["text"] for res in results] == TEXTS
    first = {(e["text"], e["label"]) for e in results[0]["entities"]}
    assert first == {("Lady Gaga", "person"), ("Paris", "geo-loc")}
    for res in results:
        for e in res["entities"]:
            assert res["text"][e["start"]:e["end"]] == e["text"]
            assert 0.0 < e["score"] <= 1.0


def test_one_text_equals_nlp_call(client, model):
    nlp = model[0]
    for text in TEXTS:
        r = client.post("/ner", json={"texts": [text]})
        assert r.json()["results"] == [doc_to_json(text, nlp(text))]


def test_empty_list(client):
    r = client.post("/ner", json={"texts": []})
    assert r.status_code == 200
    assert r.json() == {"results": []}


def test_any_content_type_is_read_as_json(client):
    # curl -d sends application/x-www-form-urlencoded unless told otherwise
    r = client.post("/ner", content=b'{"texts": ["Lady Gaga is in Paris tonight"]}',
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200
    assert len(r.json()["results"]) == 1


BAD_REQUESTS = [
    (b"", 400, "empty"),
    (b"   ", 400, "empty"),
    (b'{"texts": ["Lady Gaga"', 400, "not valid JSON"),
    (b"texts=Lady+Gaga", 400, "not valid JSON"),
    (b'{"texts": ["caf\xe9"]}', 400, "not UTF-8"),
    (b"[" * 30000 + b"]" * 30000, 400, "nested too deeply"),
    (b'["Lady Gaga"]', 422, "must be a JSON object"),
    (b'"Lady Gaga"', 422, "must be a JSON object"),
    (b'{"text": ["Lady Gaga"]}', 422, 'missing field "texts"'),
    (b'{"texts": "Lady Gaga"}', 422, '"texts" must be a list of strings, got a string'),
    (b'{"texts": null}', 422, "got null"),
    (b'{"texts": {"a": "b"}}', 422, "got an object"),
    (b'{"texts": ["ok", 3]}', 422, "texts[1] is a number"),
    (b'{"texts": ["ok", null]}', 422, "texts[1] is null"),
    (b'{"texts": [["nested"]]}', 422, "texts[0] is a list"),
    (b'{"texts": ["ok", "\\ud800 lone surrogate"]}', 422, "lone surrogate"),
    (json.dumps({"texts": ["a tweet"] * (MAX_TEXTS + 1)}).encode(), 413, f"limit is {MAX_TEXTS}"),
    (json.dumps({"texts": ["ok", "x" * (MAX_CHARS + 1)]}).encode(), 413, f"texts[1] is too long: {MAX_CHARS + 1}"),
]


@pytest.mark.parametrize("body,status,message", BAD_REQUESTS, ids=[f"{s}-{m}" for _, s, m in BAD_REQUESTS])
def test_bad_requests(client, body, status, message):
    r = client.post("/ner", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert message in r.json()["error"]


def test_body_too_large(client):
    limit = serve.max_body_bytes(MAX_TEXTS, MAX_CHARS)
    r = client.post("/ner", content=b" " * (limit + 1))
    assert r.status_code == 413 and "too large" in r.json()["error"]

    def chunks():  # no Content-Length: counted while reading
        for _ in range(limit // 4096 + 2):
            yield b" " * 4096

    r = client.post("/ner", content=chunks())
    assert r.status_code == 413 and "too large" in r.json()["error"]


def test_server_survives_bad_requests(client):
    for body, _, _ in BAD_REQUESTS[:6]:
        client.post("/ner", content=body)
    assert client.post("/ner", json={"texts": ["Lady Gaga"]}).status_code == 200


def test_unknown_path_and_method_are_json(client):
    r = client.get("/nope")
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}
    r = client.get("/ner")
    assert r.status_code == 405 and r.json() == {"error": "Method Not Allowed"}


def test_fastapi_validation_errors_are_400_and_422(model):
    """Routes that let FastAPI parse the body: invalid JSON is 400, wrong types 422."""
    from typing import List

    from pydantic import BaseModel, StrictStr

    class Texts(BaseModel):
        texts: List[StrictStr]

    app = serve.create_app(model[0])

    @app.post("/typed")
    def typed(body: Texts):
        return {"n": len(body.texts)}

    with TestClient(app) as c:
        r = c.post("/typed", content=b'{"texts": [', headers={"content-type": "application/json"})
        assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
        r = c.post("/typed", json={"texts": [1]})
        assert r.status_code == 422 and "texts.0" in r.json()["error"]
        assert c.post("/typed", json={"texts": ["a"]}).json() == {"n": 1}


def test_pipeline_failure_is_a_json_500():
    from spacy.language import Language

    if "serve_test_boom" not in Language.factories:
        @Language.component("serve_test_boom")
        def boom(doc):
            if "boom" in doc.text:
                raise RuntimeError("the model broke")
            return doc

    nlp = spacy.blank("en")
    nlp.add_pipe("serve_test_boom")
    with TestClient(serve.create_app(nlp), raise_server_exceptions=False) as c:
        r = c.post("/ner", json={"texts": ["boom"]})
        assert r.status_code == 500
        assert r.json() == {"error": "internal error: RuntimeError: the model broke"}
        assert c.post("/ner", json={"texts": ["fine"]}).json() == {"results": [{"text": "fine", "entities": []}]}


def test_create_app_checks_limits(model):
    with pytest.raises(ValueError, match="max_texts"):
        serve.create_app(model[0], max_texts=0)


# -- the page -----------------------------------------------------------------------------------


def test_page_form(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<form" in r.text and "<textarea name='text'" in r.text and "<mark" not in r.text


def test_page_renders_entities(client, model):
    text = "omg Tom Brady just landed in Tokyo !!"
    r = client.get("/", params={"text": text})
    assert r.status_code == 200
    marks = re.findall(r'<mark class="entity"[^>]*>\s*(.*?)\s*<span[^>]*>\s*(.*?)\s*</span>', r.text)
    expected = [(e["text"], e["label"]) for e in doc_to_json(text, model[0](text))["entities"]]
    assert expected and marks == expected
    assert f">{text}</textarea>" in r.text  # the tweet stays in the box


def test_page_escapes_and_limits(client):
    r = client.get("/", params={"text": "<script>alert(1)</script> Lady Gaga"})
    assert r.status_code == 200 and "<script>alert" not in r.text and "&lt;script&gt;" in r.text
    r = client.get("/", params={"text": "x" * (MAX_CHARS + 1)})
    assert r.status_code == 413 and "too long" in r.text


# -- a live server: main(), sockets, threads ----------------------------------------------------


# ``python -m spacy_twitter_ner`` with the GIL handed between threads every microsecond rather
# than every 5 ms: threads then interleave inside a tiny model's forward pass, so that a race in
# prediction (a shared train/eval mode flipped by another thread) shows within a few hundred requests.
RUN_MODULE = ("import runpy, sys; sys.setswitchinterval(1e-6); sys.argv[0] = 'spacy_twitter_ner'; "
              "runpy.run_module('spacy_twitter_ner', run_name='__main__', alter_sys=True)")


class LiveServer:
    """``spacy-twitter-ner serve MODEL --port 0`` in a subprocess; its stderr is drained by a
    thread (a full pipe would block the server) and kept for error messages."""

    def __init__(self, model_dir, *args):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RUN_MODULE, "serve", str(model_dir), "--port", "0", "--no-access-log", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, cwd=ROOT,
        )
        self.lines = queue.Queue()
        self.log = []
        threading.Thread(target=self._drain, daemon=True).start()
        self.url = self._wait_for_url(timeout=90)

    def _drain(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self.log.append(line)
            self.lines.put(line)

    def _wait_for_url(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            found = re.search(r"serving .* on (http://127\.0\.0\.1:\d+)", line)
            if found:
                url = found.group(1)
                while time.monotonic() < deadline:
                    try:
                        if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                            return url
                    except httpx.HTTPError:
                        time.sleep(0.1)
                break
        self.stop()
        raise AssertionError("the server did not start:\n" + "\n".join(self.log[-20:]))

    def stop(self):
        """Ctrl+C (SIGINT), as a person would; SIGKILL if that did not work within 15 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def live(model):
    server = LiveServer(model[1], "--threads", "8", "--max-texts", str(MAX_TEXTS), "--max-chars", str(MAX_CHARS))
    yield server
    server.stop()


def test_live_server(live, model):
    r = httpx.post(f"{live.url}/ner", json={"texts": TEXTS[:3]}, timeout=30)
    assert r.status_code == 200 and r.json()["results"] == reference(model[0], TEXTS[:3])
    r = httpx.post(f"{live.url}/ner", content=b'{"texts": [', timeout=30)
    assert r.status_code == 400
    assert httpx.get(f"{live.url}/health", timeout=30).json()["limits"]["max_texts"] == MAX_TEXTS


CLIENTS = 12


def test_concurrent_requests_equal_sequential_nlp(live, model, tiny_helpers):
    """12 client threads x 40 requests against 8 server threads: every answer must be exactly the
    sequential result (one-text requests: ``nlp(text)``; batches: ``nlp.pipe`` of that batch)."""
    nlp = model[0]
    pool = TEXTS + [t for t, _ in tiny_helpers.tiny_texts(40, seed=7)] + ["Lady Gaga and Adele " * 5]
    rnd = random.Random(0)
    batches = [[rnd.choice(pool) for _ in range(rnd.choice([1, 1, 2, 5, MAX_TEXTS]))] for _ in range(480)]
    expected = [[doc_to_json(b[0], nlp(b[0]))] if len(b) == 1 else reference(nlp, b) for b in batches]
    assert sum(len(r["entities"]) for res in expected for r in res) > 200

    def client_run(k):
        answers = []
        with httpx.Client(base_url=live.url, timeout=60) as c:
            for i in range(k, len(batches), CLIENTS):
                r = c.post("/ner", json={"texts": batches[i]})
                answers.append((i, r.status_code, r.json()))
        return answers

    with ThreadPoolExecutor(CLIENTS) as pool_:
        answers = [a for part in pool_.map(client_run, range(CLIENTS)) for a in part]
    assert sorted(i for i, _, _ in answers) == list(range(len(batches)))
    errors = [(i, status, body) for i, status, body in answers if status != 200]
    assert not errors, errors[:3]
    wrong = [i for i, _, body in answers if body["results"] != expected[i]]
    assert not wrong, (f"{len(wrong)} of {len(batches)} concurrent answers differ from sequential nlp, e.g. "
                       f"{batches[wrong[0]]}: {[a for a in answers if a[0] == wrong[0]][0][2]} != {expected[wrong[0]]}")


CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")
def test_page_in_headless_chromium(live, model):
    text = "omg Tom Brady just landed in Tokyo !!"
    url = f"{live.url}/?{urllib.parse.urlencode({'text': text})}"
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True, timeout=90,
        )
    dom = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")[-500:]
    marks = re.findall(r'<mark class="entity"[^>]*>\s*(.*?)\s*<span[^>]*>\s*(.*?)\s*</span>\s*</mark>', dom)
    expected = [(e["text"], e["label"]) for e in doc_to_json(text, model[0](text))["entities"]]
    assert expected and marks == expected, dom[-2000:]


def test_stops_cleanly(live):
    """Ctrl+C: uvicorn's graceful shutdown, exit code 0, no traceback (the module's last live test)."""
    server = live
    server.stop()
    time.sleep(0.2)  # the last lines of stderr
    assert server.proc.returncode == 0, "\n".join(server.log)
    assert any("Application shutdown complete" in line for line in server.log)
    assert not any("Traceback" in line for line in server.log), "\n".join(server.log)


# -- main: usage errors -------------------------------------------------------------------------


def test_main_missing_model(tmp_path, capsys):
    assert serve.main([str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: model" in err and "not found" in err


def test_main_not_a_pipeline(tmp_path, capsys):
    assert serve.main([str(tmp_path)]) == 1
    assert "no config.cfg" in capsys.readouterr().err


def test_main_through_the_dispatcher(tmp_path, capsys):
    from spacy_twitter_ner import cli

    assert cli.main(["serve", str(tmp_path / "nope")]) == 1
    assert "not found" in capsys.readouterr().err


def test_main_bad_port(model, capsys):
    assert serve.main([str(model[1]), "--port", "70000"]) == 2
    assert "port number" in capsys.readouterr().err


def test_main_port_in_use(model, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        assert serve.main([str(model[1]), "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and err.count("\n") == 1
    assert time.monotonic() - started < 5  # before the model is loaded
