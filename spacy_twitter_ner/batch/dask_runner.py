"""Running ``annotate`` partitions on Dask (``pip install 'spacy-twitter-ner[dask]'``).

* :class:`LoadPipeline`, a ``distributed.WorkerPlugin``, loads the pipeline once per worker
  process when it is registered (and again on any worker that joins later, e.g. one the nanny
  restarted after a crash) and sets torch to one thread: a worker process runs one task at a time
  and gets its parallelism from the other processes.
* :func:`local_cluster` starts ``n`` single-threaded worker processes on this machine.
* :func:`run_partitions` submits one task per partition and yields results as they complete. A
  task whose worker dies is re-run on another worker by the scheduler; tasks are idempotent (see
  :mod:`.writers`), so the output still holds every record once.
"""
import asyncio
import os
import uuid
from typing import Dict, Iterator, List, Optional

from distributed import Client, LocalCluster, WorkerPlugin, as_completed

from .readers import AnnotateError, RecordError
from .tasks import annotate_partition, get_nlp, process_info

ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                  "TOKENIZERS_PARALLELISM": "false"}


class LoadPipeline(WorkerPlugin):
    """Load the pipeline (a path or package name visible to the worker) once per worker process."""

    idempotent = False  # registering again re-runs setup: cheap, the pipeline is cached

    def __init__(self, model: str, torch_threads: int = 1):
        self.model = model
        self.torch_threads = torch_threads
        self.name = plugin_name(model)

    async def setup(self, worker) -> None:
        for key, value in ONE_THREAD_ENV.items():
            os.environ.setdefault(key, value)
        import torch

        torch.set_num_threads(self.torch_threads)
        # off the event loop: a slow load must not stall the worker's heartbeats
        try:
            await asyncio.get_running_loop().run_in_executor(None, get_nlp, self.model)
        except AnnotateError:
            pass  # kept in tasks.LOAD_ERRORS: load_on_workers reports it, tasks fail cleanly


def plugin_name(model: str) -> str:
    return f"spacy-twitter-ner-pipeline:{model}"


def local_cluster(n_workers: int, **kwargs) -> LocalCluster:
    """``n_workers`` worker processes with one thread each (and one BLAS/OpenMP thread)."""
    options = dict(n_workers=n_workers, threads_per_worker=1, processes=True,
                   dashboard_address=None, env=dict(ONE_THREAD_ENV))
    options.update(kwargs)
    return LocalCluster(**options)


def connect(address: str, timeout: float = 20) -> Client:
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError) as err:
        raise AnnotateError(f"cannot connect to the Dask scheduler at {address}: "
                            f"{' '.join(str(err).split())[:200]}") from None


def load_on_workers(client: Client, model: str, wait_for_workers: int = 1, timeout: float = 120) -> Dict:
    """Register :class:`LoadPipeline` (every worker loads the pipeline now, before any task);
    return :func:`process_info` per worker (load times, memory)."""
    try:
        client.wait_for_workers(wait_for_workers, timeout=timeout)
    except TimeoutError:
        raise AnnotateError(f"no Dask worker joined the scheduler within {timeout:.0f} s") from None
    client.register_plugin(LoadPipeline(model))
    info = client.run(process_info)
    for address, worker in info.items():
        error = worker["load_errors"].get(model)
        if error:
            raise AnnotateError(f"Dask worker {address} could not load the pipeline: {error} (the "
                                f"model must be a path or installed package visible on every worker)")
    return info


def workers_info(client: Client) -> Dict:
    return client.run(process_info)


def annotate_task(part: Dict, settings: Dict) -> Dict:
    """:func:`annotate_partition`, with bad input returned as ``{"failed": message}`` rather than
    raised: the worker then logs no "Compute Failed" traceback for what is the user's data."""
    try:
        return annotate_partition(part, settings)
    except AnnotateError as err:
        return {"name": part["name"], "failed": str(err), "record": isinstance(err, RecordError)}


def run_partitions(client: Client, parts: List[Dict], settings: Dict) -> Iterator[Dict]:
    """Submit one task per partition; yield each result as it completes. On a failure the
    remaining tasks are cancelled and the error raised (an ``AnnotateError`` for bad input)."""
    job = uuid.uuid4().hex[:8]
    futures = [
        client.submit(annotate_task, part, settings, key=f"annotate-{part['name']}-{job}",
                      pure=False)
        for part in parts
    ]
    names = {f.key: part["name"] for f, part in zip(futures, parts)}
    try:
        for future in as_completed(futures):
            error = _failure(future, names[future.key])
            if error is not None:
                raise error
            result = future.result()
            future.release()
            if "failed" in result:
                raise (RecordError if result["record"] else AnnotateError)(result["failed"])
            yield result
    finally:
        client.cancel([f for f in futures if not f.done()])


def _failure(future, name: str) -> Optional[BaseException]:
    if future.status == "finished":
        return None
    if future.status == "cancelled":
        return AnnotateError(f"partition {name} was cancelled (did the cluster shut down?)")
    exc = future.exception()
    if isinstance(exc, AnnotateError):
        return exc
    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        return AnnotateError(
            f"partition {name}: the workers running it died too often (out of memory?); "
            f"rerun the same command to resume"
        )
    return AnnotateError(f"partition {name} failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")


def close(client: Optional[Client], cluster: Optional[LocalCluster]) -> None:
    for thing in (client, cluster):
        if thing is not None:
            try:
                thing.close()
            except Exception:  # noqa: BLE001 - shutting down anyway
                pass
