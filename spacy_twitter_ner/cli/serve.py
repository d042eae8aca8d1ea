"""HTTP service: a pipeline behind FastAPI + uvicorn (``pip install "spacy-twitter-ner[serve]"``).

    spacy-twitter-ner serve MODEL [--host 127.0.0.1] [--port 8000] [--max-texts N] [--max-chars N]
                                  [--threads N] [--workers N] [--batch-size N] [--torch-threads N]

Endpoints:

    POST /ner     {"texts": ["tweet", ...]} -> {"results": [one object per text, in order]}, each
                  exactly what ``spacy-twitter-ner tag`` writes for that text:
                  {"text": ..., "entities": [{"text", "label", "start", "end", "score"}]}
    GET  /health  {"status": "ok", "model": {name, version, source, pipeline, labels}, "limits": {...}}
    GET  /        a page to paste a tweet into and see displaCy's entity view (GET /?text=...)

Every error is JSON, ``{"error": "<what is wrong>"}``: 400 the body is not JSON (or not UTF-8),
422 JSON of the wrong shape (``texts`` must be a list of strings), 413 too many texts, a text too
long or a body too large (``--max-texts``, ``--max-chars``), 404/405 unknown path or method, 500
the pipeline failed. An empty list is fine: ``{"results": []}``.

The pipeline runs in worker threads (at most ``--threads`` at a time; further requests wait), and
each request's texts go through ``nlp.pipe`` as one unit, so a response is the same whatever else
the server is doing. ``--workers N`` starts N processes, each with its own copy of the model.
"""
import argparse
import html
import json
import os
import socket
import sys
import threading
from typing import Any, Dict, List, Optional, Sequence

from .tag import PROG, CLIError, _positive_int, doc_to_json, load_model, resolve_model

DEFAULT_MAX_TEXTS = 1000
DEFAULT_MAX_CHARS = 2000
DEFAULT_THREADS = 4
DEFAULT_BATCH_SIZE = 64
# Worst case JSON for one character is 12 bytes (an escaped surrogate pair, "\ud83d\ude00"), plus
# quotes and a comma per text and some room for the rest of the object and whitespace.
BODY_BYTES_PER_CHAR = 12
BODY_SLACK = 64 * 1024
# --workers > 1: the factory in each worker process reads its settings from here
ENV_SETTINGS = "SPACY_TWITTER_NER_SERVE"
PALETTE = ["#7aecec", "#bfeeb7", "#feca74", "#ff9561", "#aa9cfc", "#c887fb", "#9cc9cc",
           "#ffeb80", "#ff8197", "#f0d0ff", "#e4e7d2", "#bfe1d9"]


class APIError(Exception):
    """A request the service refuses: sent as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def max_body_bytes(max_texts: int, max_chars: int) -> int:
    """The largest request body that can hold ``max_texts`` texts of ``max_chars`` characters."""
    return max_texts * (BODY_BYTES_PER_CHAR * max_chars + 8) + BODY_SLACK


# -- request checking (no FastAPI needed: unit-testable on its own) -----------------------------


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def parse_texts(body: bytes, max_texts: int, max_chars: int) -> List[str]:
    """The ``texts`` of a POST /ner body, or an :class:`APIError` naming the problem."""
    if not body.strip():
        raise APIError(400, 'the request body is empty: send JSON {"texts": ["a tweet", ...]}')
    try:
        obj = json.loads(body)
    except UnicodeDecodeError as err:
        raise APIError(400, f"the request body is not UTF-8 text (byte 0x{err.object[err.start]:02x} "
                            f"at offset {err.start})") from None
    except ValueError as err:  # json.JSONDecodeError
        raise APIError(400, f"the request body is not valid JSON: {err}") from None
    except RecursionError:
        raise APIError(400, "the request body is not usable JSON: nested too deeply") from None
    if not isinstance(obj, dict):
        raise APIError(422, f'the request body must be a JSON object {{"texts": [...]}}, got {_json_type(obj)}')
    if "texts" not in obj:
        raise APIError(422, 'missing field "texts": expected {"texts": ["a tweet", ...]}')
    texts = obj["texts"]
    if not isinstance(texts, list):
        raise APIError(422, f'"texts" must be a list of strings, got {_json_type(texts)}')
    if len(texts) > max_texts:
        raise APIError(413, f"too many texts: {len(texts)} in one request, the limit is {max_texts} "
                            "(--max-texts); split them over several requests")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise APIError(422, f'"texts" must be a list of strings: texts[{i}] is {_json_type(text)}')
        if len(text) > max_chars:
            raise APIError(413, f"texts[{i}] is too long: {len(text)} characters, the limit is "
                                f"{max_chars} (--max-chars)")
        _check_unicode(text, f"texts[{i}]")
    return texts


def _check_unicode(text: str, where: str) -> None:
    """JSON may spell lone surrogates (``"\\ud800"``), which no UTF-8 response can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise APIError(422, f"{where} is not valid Unicode: a lone surrogate U+{ord(text[err.start]):04X} "
                            f"at character {err.start}") from None


def model_info(nlp, source: Optional[str] = None) -> Dict[str, Any]:
    meta = nlp.meta
    labels = set()
    for name in nlp.pipe_names:
        if "doc.ents" in nlp.get_pipe_meta(name).assigns:
            labels.update(nlp.pipe_labels.get(name, []))
    return {
        "name": f"{meta.get('lang', nlp.lang)}_{meta.get('name', 'pipeline')}",
        "version": meta.get("version"),
        "source": source,
        "pipeline": list(nlp.pipe_names),
        "labels": sorted(labels),
    }


# -- the page -----------------------------------------------------------------------------------

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:24px auto;max-width:900px;padding:0 16px;color:#222}"
    "h1{font-size:1.4em;margin:0 0 4px}.meta{color:#666;font-size:.85em;margin:0 0 16px}"
    "textarea{width:100%;box-sizing:border-box;font:inherit;padding:8px}"
    "button{margin-top:8px;font-size:1em;padding:6px 16px}"
    ".result{margin-top:20px;padding:12px;border:1px solid #ddd;border-radius:6px}"
    ".error{color:#b00020;margin-top:16px}table{border-collapse:collapse;margin-top:12px;font-size:.9em}"
    "td,th{border-bottom:1px solid #eee;padding:3px 10px;text-align:left}"
    ".hint{color:#666;font-size:.85em;margin-top:20px}code{background:#f3f3f3;padding:1px 4px}"
)


def render_entities(text: str, entities: List[Dict[str, Any]], colors: Dict[str, str]) -> str:
    """displaCy's ``style="ent"`` markup. The renderer is called directly: ``displacy.render``
    keeps its output in a module global, which concurrent requests would overwrite."""
    from spacy.displacy.render import EntityRenderer

    parsed = {"text": text, "ents": [{"start": e["start"], "end": e["end"], "label": e["label"]}
                                     for e in entities], "title": None, "settings": {}}
    return EntityRenderer({"colors": colors}).render([parsed], page=False, minify=True).strip()


def render_page(info: Dict[str, Any], max_chars: int, text: str = "", result: Optional[Dict] = None,
                error: Optional[str] = None, colors: Optional[Dict[str, str]] = None) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>Twitter NER</title><style>{_STYLE}</style></head><body>",
        "<h1>Twitter NER</h1>",
        f"<p class='meta'>model {esc(info['name'])} {esc(str(info.get('version') or ''))}"
        f" &middot; labels: {esc(', '.join(info['labels']) or 'none')}</p>",
        "<form method='get' action='/'>",
        f"<textarea name='text' rows='4' maxlength='{max_chars}' placeholder='Paste a tweet' autofocus>"
        f"{esc(text)}</textarea><br><button type='submit'>Find entities</button></form>",
    ]
    if error:
        parts.append(f"<p class='error'>{esc(error)}</p>")
    elif result is not None:
        parts.append(f"<div class='result'>{render_entities(result['text'], result['entities'], colors or {})}</div>")
        if result["entities"]:
            rows = "".join(
                f"<tr><td>{esc(e['text'])}</td><td>{esc(e['label'])}</td><td>{e['start']}-{e['end']}</td>"
                f"<td>{'' if e['score'] is None else format(e['score'], '.3f')}</td></tr>"
                for e in result["entities"]
            )
            head = "<tr><th>entity</th><th>label</th><th>characters</th><th>score</th></tr>"
            parts.append(f"<table>{head}{rows}</table>")
        else:
            parts.append("<p class='meta'>no entities found</p>")
    parts.append(
        "<p class='hint'>API: <code>POST /ner</code> with <code>{\"texts\": [...]}</code>, "
        "<code>GET /health</code>, schema at <a href='/openapi.json'>/openapi.json</a>.</p></body></html>"
    )
    return "".join(parts)


# -- the app ------------------------------------------------------------------------------------


def create_app(nlp, max_texts: int = DEFAULT_MAX_TEXTS, max_chars: int = DEFAULT_MAX_CHARS,
               threads: int = DEFAULT_THREADS, batch_size: int = DEFAULT_BATCH_SIZE,
               source: Optional[str] = None):
    """A FastAPI app serving ``nlp``. ``threads`` bounds how many requests run the pipeline at
    once; ``batch_size`` is ``nlp.pipe``'s batch size within one request."""
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    for name, value in (("max_texts", max_texts), ("max_chars", max_chars), ("threads", threads),
                        ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if nlp.max_length <= max_chars:
        nlp.max_length = max_chars + 1
    info = model_info(nlp, source)
    colors = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(info["labels"])}
    limits = {"max_texts": max_texts, "max_chars": max_chars, "max_body_bytes": max_body_bytes(max_texts, max_chars)}
    # a thread semaphore, not an anyio limiter: it works whatever event loop calls the app
    running = threading.BoundedSemaphore(threads)

    app = FastAPI(
        title="spacy-twitter-ner",
        description="Named entities in tweets. POST /ner with {\"texts\": [...]}.",
        version=str(info.get("version") or ""),
    )
    app.state.nlp = nlp

    def error(status: int, message: str):
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(APIError)
    async def _api_error(request, exc: APIError):
        return error(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc):
        # FastAPI's own body parsing (routes added to this app) reports bad JSON as a validation
        # error (422); it is a malformed request, 400. Wrong types stay 422.
        errors = exc.errors()
        bad_json = any(e.get("type") == "json_invalid" for e in errors)
        where = lambda e: ".".join(str(p) for p in e.get("loc", ()))  # noqa: E731
        detail = "; ".join(f"{where(e)}: {e.get('msg')}" for e in errors[:5])
        message = f"the request body is not valid JSON ({detail})" if bad_json else f"invalid request: {detail}"
        return error(400 if bad_json else 422, message)

    @app.exception_handler(Exception)
    async def _internal_error(request, exc):
        return error(500, f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")

    def tag(texts: List[str]) -> List[Dict[str, Any]]:
        with running:
            docs = nlp.pipe(texts, batch_size=batch_size)
            return [doc_to_json(text, doc) for text, doc in zip(texts, docs)]

    async def run_pipeline(texts: List[str]) -> List[Dict[str, Any]]:
        if not texts:
            return []
        return await run_in_threadpool(tag, texts)

    async def read_body(request: Request) -> bytes:
        limit = limits["max_body_bytes"]
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise APIError(413, f"the request body is too large: {declared} bytes, the limit is {limit} "
                                f"({max_texts} texts of {max_chars} characters)")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise APIError(413, f"the request body is too large: over {limit} bytes "
                                    f"({max_texts} texts of {max_chars} characters)")
            chunks.append(chunk)
        return b"".join(chunks)

    request_schema = {
        "type": "object",
        "required": ["texts"],
        "properties": {"texts": {"type": "array", "maxItems": max_texts,
                                 "items": {"type": "string", "maxLength": max_chars}}},
        "example": {"texts": ["Carmelo Anthony is heading to Madison Square Garden tonight"]},
    }

    @app.post(
        "/ner",
        summary="Named entities of each text",
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": request_schema}}}},
        responses={400: {"description": "not JSON"}, 413: {"description": "over a limit"},
                   422: {"description": "not a list of strings"}},
    )
    async def ner(request: Request):
        """``{"texts": [...]}`` -> ``{"results": [...]}``, one result per text, in order."""
        texts = parse_texts(await read_body(request), max_texts, max_chars)
        return JSONResponse({"results": await run_pipeline(texts)})

    @app.get("/health", summary="Liveness and the model served")
    async def health():
        return JSONResponse({"status": "ok", "model": info, "limits": limits})

    @app.get("/", response_class=HTMLResponse, summary="A page to try the model on one tweet")
    async def page(text: Optional[str] = None):
        text = text or ""
        if not text.strip():
            return HTMLResponse(render_page(info, max_chars, text))
        if len(text) > max_chars:
            message = f"The text is too long: {len(text)} characters, the limit is {max_chars}."
            return HTMLResponse(render_page(info, max_chars, text, error=message), status_code=413)
        result = (await run_pipeline([text]))[0]
        return HTMLResponse(render_page(info, max_chars, text, result=result, colors=colors))

    return app


def app_from_env():
    """The app of one ``--workers`` process (uvicorn calls this factory in each of them)."""
    settings = json.loads(os.environ[ENV_SETTINGS])
    _torch_threads(settings.pop("torch_threads"))
    model = settings.pop("model")
    return create_app(load_model(model), source=model, **settings)


# -- command line -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} serve",
        description=(
            "Serve a pipeline over HTTP: POST /ner with {\"texts\": [...]} returns "
            "{\"results\": [...]} (the objects `spacy-twitter-ner tag` writes), GET /health, and a "
            "page at / to try it on a tweet. Errors are JSON {\"error\": ...}: 400 not JSON, 413 "
            "over a limit, 422 not a list of strings."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="pipeline directory or installed pipeline package name")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--max-texts", metavar="N", type=_positive_int, default=DEFAULT_MAX_TEXTS,
                        help=f"most texts in one request (default {DEFAULT_MAX_TEXTS}; more: 413)")
    parser.add_argument("--max-chars", metavar="N", type=_positive_int, default=DEFAULT_MAX_CHARS,
                        help=f"most characters in one text (default {DEFAULT_MAX_CHARS}; more: 413)")
    parser.add_argument("--threads", metavar="N", type=_positive_int, default=DEFAULT_THREADS,
                        help=f"requests running the pipeline at once, per worker (default {DEFAULT_THREADS}); "
                             "others wait their turn")
    parser.add_argument("--workers", metavar="N", type=_positive_int, default=1,
                        help="server processes, each loading the model (default 1)")
    parser.add_argument("--batch-size", metavar="N", type=_positive_int, default=DEFAULT_BATCH_SIZE,
                        help=f"nlp.pipe batch size within a request (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--torch-threads", metavar="N", type=_positive_int, default=1,
                        help="PyTorch CPU threads per process (default 1: requests run in parallel instead)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                        help="uvicorn log level (default info)")
    parser.add_argument("--no-access-log", action="store_true", help="do not log every request")
    return parser


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {value!r}")
    return port


def _torch_threads(n: Optional[int]) -> None:
    if n:
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a dependency
            return
        torch.set_num_threads(n)


def _listen(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise CLIError(f"cannot listen on {host}:{port}: unknown host ({err.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise CLIError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    sock.set_inheritable(True)
    return sock


def run(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as err:
        raise CLIError(f"serving needs FastAPI and uvicorn ({err.name} is missing): "
                       'pip install "spacy-twitter-ner[serve]"') from None
    target = resolve_model(args.model)
    # the port first: a busy port is reported at once, not after loading the model
    sock = _listen(args.host, args.port)
    try:
        _torch_threads(args.torch_threads)
        nlp = load_model(args.model, target)
    except BaseException:
        sock.close()
        raise
    settings = {"max_texts": args.max_texts, "max_chars": args.max_chars, "threads": args.threads,
                "batch_size": args.batch_size}
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    common = dict(log_level=args.log_level, access_log=not args.no_access_log, timeout_graceful_shutdown=10)
    message = (f"{PROG}: serving {args.model} on http://{shown}:{port} ({args.workers} worker(s) x "
               f"{args.threads} thread(s)); Ctrl+C stops")
    if args.workers == 1:
        server = uvicorn.Server(uvicorn.Config(create_app(nlp, source=args.model, **settings), **common))
        print(message, file=sys.stderr, flush=True)
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()
        return 0
    # Several processes: uvicorn's supervisor starts them, and each builds its own app (and model)
    # with app_from_env. The model was loaded here only to report a broken one clearly; the port
    # found above (--port 0 too) is handed to uvicorn, which binds it again.
    del nlp
    sock.close()
    os.environ[ENV_SETTINGS] = json.dumps(dict(settings, model=str(args.model), torch_threads=args.torch_threads))
    print(message, file=sys.stderr, flush=True)
    uvicorn.run("spacy_twitter_ner.cli.serve:app_from_env", factory=True, host=host, port=port,
                workers=args.workers, **common)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2): argparse already printed
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        return run(args)
    except CLIError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
