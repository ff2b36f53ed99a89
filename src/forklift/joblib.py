"""``forklift.joblib``: a joblib backend, so that joblib and scikit-learn run on forklift.

::

    import joblib
    import forklift.joblib                    # registers the "forklift" backend

    with joblib.parallel_config(backend="forklift", n_jobs=4, timeout=600, retries=1):
        scores = cross_val_score(model, X, y, cv=5, n_jobs=4)       # scikit-learn inside
        out = joblib.Parallel()(joblib.delayed(f)(x) for x in xs)

joblib's ``Parallel`` (and with it scikit-learn's ``n_jobs``) then runs its batches on a
:class:`forklift.Executor`, with forklift's failure contract: a worker that dies fails
its batch with ``WorkerLostError`` (or, with ``retries=N``, runs it again) instead of
joblib's ``TerminatedWorkerError`` for the whole call; ``timeout=`` kills a batch that
runs too long; no worker outlives the program, and when a task fails the others still
running are killed with their process trees. The keywords after ``n_jobs`` are
:class:`forklift.Executor`'s: ``timeout``, ``retries``, ``start_method``,
``max_memory``, ``max_tasks_per_child``, ``address`` (a Dask cluster, or ``"local"``),
``credentials``, ``journal``, ``init_timeout``. ``timeout`` counts per joblib batch
(joblib groups fast tasks into batches of up to about 2 s).

As with loky, the workers are kept between ``Parallel`` calls with the same settings
(a grid search makes hundreds of calls; :func:`shutdown` stops them earlier than the
program's end), and BLAS/OpenMP thread pools in them are limited to ``cpus // n_jobs``
threads unless the environment says otherwise.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import warnings
from typing import Any

from joblib.parallel import (
    AutoBatchingMixin,
    FallbackToBackend,
    ParallelBackendBase,
    SequentialBackend,
    register_parallel_backend,
)

from .executor import Executor

__all__ = ["ForkliftBackend", "register", "shutdown"]

#: The Executor keywords ``parallel_config(backend="forklift", ...)`` passes on
#: (``initializer`` and ``initargs`` also come from ``Parallel(...)``, as with loky).
EXECUTOR_KEYWORDS = frozenset(
    {
        "initializer",
        "initargs",
        "timeout",
        "retries",
        "start_method",
        "max_memory",
        "max_tasks_per_child",
        "address",
        "credentials",
        "journal",
        "init_timeout",
        "progress",
        "forward_logging",
    }
)


class ForkliftBackend(AutoBatchingMixin, ParallelBackendBase):  # type: ignore[misc]
    """joblib's ``ParallelBackendBase`` on a :class:`forklift.Executor` (see the module docstring)."""

    supports_retrieve_callback = True
    supports_inner_max_num_threads = True
    supports_timeout = True

    def __init__(
        self, nesting_level: int | None = None, inner_max_num_threads: int | None = None, **options: Any
    ):
        unknown = sorted(set(options) - EXECUTOR_KEYWORDS)
        if unknown:
            raise TypeError(
                f"the forklift joblib backend takes no {', '.join(map(repr, unknown))}; "
                f"it takes {', '.join(sorted(EXECUTOR_KEYWORDS))}"
            )
        super().__init__(nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads, **options)
        self._workers: Executor | None = None

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None:
            return 1
        if multiprocessing.current_process().daemon and self.backend_kwargs.get("address") is None:
            if n_jobs != 1:  # a multiprocessing Pool's worker: it may not start processes
                warnings.warn(
                    "forklift-backed parallel loops cannot start processes in a daemonic "
                    "process (a multiprocessing Pool's worker): setting n_jobs=1",
                    stacklevel=3,
                )
            return 1
        if n_jobs < 0:  # as joblib counts: -1 is every CPU here (a cluster's size: see configure)
            return max((os.cpu_count() or 1) + 1 + n_jobs, 1)
        return n_jobs

    def configure(
        self,
        n_jobs: int = 1,
        parallel: Any = None,
        prefer: str | None = None,
        require: str | None = None,
        **kwargs: Any,
    ) -> int:
        on_cluster = self.backend_kwargs.get("address") is not None
        if on_cluster and n_jobs is not None and n_jobs < 0:
            workers = None  # every worker of the cluster
        else:
            workers = self.effective_n_jobs(n_jobs)
            if workers == 1 and not on_cluster:
                raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        self.parallel = parallel
        options = {**self.backend_kwargs, **{k: v for k, v in kwargs.items() if k in EXECUTOR_KEYWORDS}}
        env = self._prepare_worker_env(workers or os.cpu_count() or 1)
        self._workers = _shared_executor(workers, options, env)
        return self._workers.max_workers

    def submit(self, func: Any, callback: Any = None) -> Any:
        assert self._workers is not None, "configure() first"
        # The batch travels as the argument of one importable function, not as the function:
        # a function is pickled whole (its arrays in-band) and looked up by its bytes, where
        # an argument's big buffers go through shared memory and the same array is sent once.
        # Each batch is a job of its own: a slow one never holds back another in its chunk.
        future = self._workers._submit_alone(_run_batch, func)
        if callback is not None:
            future.add_done_callback(callback)
        return future

    def retrieve_result_callback(self, future: Any) -> Any:
        return future.result()

    def terminate(self) -> None:
        """The end of a Parallel call: the workers stay for the next one (as loky's do)."""
        self._workers = None
        self.reset_batch_stats()

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """A task failed: kill what still runs (with its process tree), then start afresh."""
        _drop_executor(self._workers)
        self._workers = None
        if ensure_ready and self.parallel is not None:
            self.configure(n_jobs=self.parallel.n_jobs, parallel=self.parallel)


def _run_batch(batch: Any) -> Any:
    """What a worker runs: one of joblib's batches (a ``BatchedCalls``)."""
    return batch()


def shutdown() -> None:
    """Stop the workers kept between ``Parallel`` calls now (they also end with the program)."""
    global _kept
    with _lock:
        kept, _kept = _kept, None
    if kept is not None:
        kept[1].shutdown(wait=True, cancel_futures=True)


def register() -> None:
    """Register the backend as ``"forklift"`` (importing this module already did)."""
    register_parallel_backend("forklift", ForkliftBackend)


# -- one Executor kept between Parallel calls with the same settings --------------------------
_lock = threading.Lock()
_kept: tuple[tuple[Any, ...], Executor] | None = None


def _shared_executor(n_jobs: int | None, options: dict[str, Any], env: dict[str, str]) -> Executor:
    global _kept
    key = (n_jobs, tuple(sorted((k, repr(v)) for k, v in options.items())), tuple(sorted(env.items())))
    with _lock:
        if _kept is not None and _kept[0] == key and _usable(_kept[1]):
            return _kept[1]
        if _kept is not None:
            _kept[1].shutdown(wait=False, cancel_futures=True)
        options = dict(options)
        if options.get("address") is None:  # a cluster's workers are started by forklift cluster worker
            init = (options.pop("initializer", None), tuple(options.pop("initargs", ())))
            options.update(initializer=_init_worker, initargs=(env, init))
        executor = Executor(n_jobs, **options)
        _kept = (key, executor)
        return executor


def _usable(executor: Executor) -> bool:
    try:
        executor._engine.check_running()  # not shut down, not broken
    except Exception:
        return False
    return True


def _drop_executor(executor: Executor | None) -> None:
    global _kept
    if executor is None:
        return
    with _lock:
        if _kept is not None and _kept[1] is executor:
            _kept = None
    executor.kill_workers()


def _init_worker(env: dict[str, str], init: tuple[Any, tuple[Any, ...]]) -> None:
    """Worker initializer: thread pools sized, the backend known, then the caller's initializer.

    The environment is joblib's own (``_prepare_worker_env``: the parent's values if set,
    else cpus // n_jobs), set before a task imports numpy or scikit-learn in the worker.
    This module is imported here (to unpickle this function), which registers "forklift"
    for a nested ``Parallel(backend="forklift")`` inside a task.
    """
    os.environ.update(env)
    initializer, initargs = init
    if initializer is not None:
        initializer(*initargs)


register()
