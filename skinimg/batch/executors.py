"""Where the per-photo work runs: this process, a local process pool, or a ``dask.distributed`` cluster.

Every worker computes on one core: OpenCV and the BLAS under NumPy single-threaded
(:func:`init_worker`).  Several threads per worker only oversubscribe the cores (measured on 2
cores, 12-MP photos: one worker with BLAS threads used 1.6 cores for the same 3.2 photos/s as with
one thread, and 2 workers reached 1.30x instead of 1.66x the rate of one).

:func:`map_jobs` runs a list of jobs and returns their results in order (``analyze`` and
``segment``); :func:`make_executor` gives the streaming executors of :func:`~skinimg.batch.run_pipeline`
(``submit``, ``wait_any``, ``close``).

A job may return a :class:`Deferred`: its result after some files are written (the maps of a photo).  In a
worker process (pool or dask) the files are written at once, before the result goes back.  In this process
(one worker) :class:`BackgroundWriter` threads write them while the next photo is measured: at most
:data:`WRITER_THREADS` photos' files wait, and a job's result (and its row) is ready only once its files are written, so a
result that is committed or exported never points to a file not yet complete.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import wait as _cf_wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Sequence

import cv2

from ..errors import SkinImgError

__all__ = ["BackgroundWriter", "Deferred", "finish", "init_worker", "limit_blas_threads", "map_jobs", "make_executor",
           "result_of"]


class Deferred:
    """A job's result that still has files to write: ``finish()`` writes them and returns the result.

    ``finish`` must not raise for a problem of the photo (it returns an error row instead); it raises only what
    stops the run (an output that cannot be written).
    """

    __slots__ = ("finish",)

    def __init__(self, finish: Callable[[], object]):
        self.finish = finish


def finish(result):
    """``result``, its files written now when it is a :class:`Deferred`."""
    return result.finish() if isinstance(result, Deferred) else result


def _run_now(fn: Callable, arg):
    """In a worker process: the job and its files, so only a plain result crosses to the parent."""
    return finish(fn(arg))


#: Writer threads of one worker: two where there are two cores.  On the idle 2-core machine, 10.9 MP photos with
#: the default maps took 1.29-1.32 s per photo with two against 1.51-1.66 s with one (the Deflate of the TIFFs
#: runs outside the GIL); under a load of 12 two had been slower (docs/indices.md, "Map files").
WRITER_THREADS = min(2, os.cpu_count() or 1)


class BackgroundWriter:
    """Threads that finish :class:`Deferred` results while the caller computes the next job.

    :meth:`submit` returns a :class:`~concurrent.futures.Future` of the result.  At most ``threads`` results
    (default :data:`WRITER_THREADS`) are being written: submitting one more waits for the oldest, and an
    exception of a finished one is re-raised at once (an output that cannot be written stops the run before
    more work).  Memory holds at most ``threads + 1`` photos' maps.
    """

    def __init__(self, threads: int | None = None):
        self.threads = max(1, int(WRITER_THREADS if threads is None else threads))
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="skinimg-writer")
        self._pending: list[Future] = []

    def submit(self, result) -> Future:
        failed = next((f for f in self._pending if f.done() and f.exception() is not None), None)
        if failed is not None:
            failed.result()
        while len(self._pending) >= self.threads:
            self._pending.pop(0).result()
        if not isinstance(result, Deferred):
            f: Future = Future()
            f.set_result(result)
            return f
        f = self._pool.submit(result.finish)
        self._pending.append(f)
        return f

    def close(self) -> None:
        """Wait for the files being written (an interrupted run leaves no partial file: writes are atomic)."""
        self._pool.shutdown(wait=True)


def init_worker() -> None:
    """Initializer of every worker process (pool process or dask worker): OpenCV and the BLAS single-threaded."""
    cv2.setNumThreads(1)
    limit_blas_threads(1)


def limit_blas_threads(n: int):
    """Limit the BLAS/OpenMP thread pools of this process (threadpoolctl, a scikit-learn
    dependency); returns the limiter (``restore_original_limits()``) or None."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with scikit-learn
        return None
    return threadpool_limits(limits=n)


def map_jobs(fn: Callable, jobs: Sequence, workers: int | None = None) -> list:
    """``[fn(job) for job in jobs]``, in worker processes when there are several jobs and workers.

    ``workers`` (default: CPU count) processes of the spawn start method, each initialised by
    :func:`init_worker`; one job or ``workers=1`` runs here, with the BLAS on one thread, and the files of a
    :class:`Deferred` result are written by a :class:`BackgroundWriter` meanwhile.  ``fn`` and the jobs must
    be picklable.  Results come back in the order of ``jobs``.  An exception (an output that cannot be written, or
    Ctrl-C) cancels the jobs not yet started and propagates.
    """
    n_workers = min(len(jobs), workers or os.cpu_count() or 1)
    if n_workers <= 1:
        blas = limit_blas_threads(1)
        writer = BackgroundWriter()
        try:
            futures = [writer.submit(fn(j)) for j in jobs]
            return [f.result() for f in futures]
        finally:
            writer.close()
            if blas is not None:
                blas.restore_original_limits()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx, initializer=init_worker) as ex:
        try:
            return list(ex.map(functools.partial(_run_now, fn), jobs, chunksize=1))
        except BaseException:  # output not writable (or Ctrl-C): do not process the remaining jobs
            ex.shutdown(wait=True, cancel_futures=True)
            raise


# ----------------------------------------------------------------------------- executors

class _InlineExecutor:
    """``--workers 1``: run each job in this process when submitted (OpenCV single-threaded meanwhile); the files
    of a :class:`Deferred` result are written by a :class:`BackgroundWriter` while the next job runs."""

    slots = 1

    def __init__(self):
        self._threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        self._blas = limit_blas_threads(1)
        self._writer = BackgroundWriter()
        self.window = self._writer.threads + 1  # jobs that ran; their files may still be written meanwhile

    def submit(self, fn, arg) -> Future:
        try:
            return self._writer.submit(fn(arg))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            f: Future = Future()
            f.set_exception(exc)
            return f

    def wait_any(self, pending: set) -> tuple[set, set]:
        done, rest = _cf_wait(pending, return_when=FIRST_COMPLETED)
        return done, rest

    def close(self, cancel: bool = False) -> None:
        self._writer.close()
        cv2.setNumThreads(self._threads)
        if self._blas is not None:
            self._blas.restore_original_limits()


class _LocalExecutor:
    """A process pool (spawn start method, every worker OpenCV single-threaded)."""

    def __init__(self, workers: int):
        ctx = multiprocessing.get_context("spawn")
        self.slots = workers
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init_worker)

    def submit(self, fn, arg) -> Future:
        return self.pool.submit(_run_now, fn, arg)

    def wait_any(self, pending: set) -> tuple[set, set]:
        done, rest = _cf_wait(pending, return_when=FIRST_COMPLETED)
        return done, rest

    def close(self, cancel: bool = False) -> None:
        self.pool.shutdown(wait=True, cancel_futures=cancel)


def _dask_plugin(fn):
    from distributed.diagnostics.plugin import WorkerPlugin

    class SkinimgWorkerInit(WorkerPlugin):
        name = "skinimg-worker-init"

        def __init__(self, init):
            self.init = init

        def setup(self, worker):
            self.init()

    return SkinimgWorkerInit(fn)


class _DaskExecutor:
    """``dask.distributed``: a LocalCluster on loopback, or an existing scheduler."""

    def __init__(self, workers: int | None, scheduler: str | None):
        try:
            import distributed
        except ImportError:
            raise SkinImgError("the dask executor needs dask.distributed: pip install 'skinimg[dask]'") from None
        self._distributed = distributed
        self.cluster = None
        try:
            if scheduler:
                self.client = distributed.Client(scheduler, timeout="20s", set_as_default=False)
            else:
                self.cluster = distributed.LocalCluster(
                    n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                    host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR)
                self.client = distributed.Client(self.cluster, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            if self.cluster is not None:
                self.cluster.close()
            raise SkinImgError(f"cannot connect to the dask scheduler ({exc})", scheduler) from None
        self.client.register_plugin(_dask_plugin(init_worker))
        self.slots = max(1, sum(self.client.nthreads().values()))

    def submit(self, fn, arg):
        return self.client.submit(_run_now, fn, arg, pure=False)

    def wait_any(self, pending: set) -> tuple[set, set]:
        with self.client.as_current():
            res = self._distributed.wait(list(pending), return_when="FIRST_COMPLETED")
        return set(res.done), set(res.not_done)

    def close(self, cancel: bool = False) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def make_executor(executor: str, workers: int | None, scheduler: str | None, n_jobs: int):
    if executor == "dask":
        return _DaskExecutor(workers, scheduler)
    if executor != "local":
        raise SkinImgError(f"unknown executor {executor!r} (use local or dask)")
    if scheduler:
        raise SkinImgError("--scheduler needs --executor dask")
    n = min(max(1, n_jobs), workers or os.cpu_count() or 1)
    return _InlineExecutor() if n <= 1 else _LocalExecutor(n)


def result_of(f) -> dict:
    """The result of a finished job; a dead worker or a lost dask worker becomes a clear error."""
    try:
        return f.result()
    except SkinImgError:
        raise
    except BrokenProcessPool:
        raise SkinImgError("a worker process died (out of memory? try fewer --workers or a smaller max_pixels); "
                           "rerun the same command to resume") from None
    except Exception as exc:
        if type(exc).__name__ == "KilledWorker":
            raise SkinImgError(f"dask workers died while processing a photo ({exc}); rerun to resume") from None
        raise
