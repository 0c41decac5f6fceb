"""The Ray launcher: every missing run of a grid as a Ray task, rows gathered by the driver alone.

``python -m bench --grid sizes --launcher ray`` starts Ray on this machine (``ray.init()``: its GPUs and
cores); ``--ray-address auto`` or ``ray://host:10001`` joins a running cluster (see
``scripts/ray-slurm.sbatch`` for one started inside a Slurm allocation). Ray is an optional extra
(``pip install .[ray]``), imported only when a run uses it.

* Each task calls ``bench.execute.unit.execute``, the same function the serial launcher calls, and returns its
  row; the driver (``bench.launchers.driver``, shared with the serial launcher) is the only writer of
  the results file and appends each row as its task finishes,
  so an interrupted driver loses nothing finished and the next invocation resumes by run_id.
* Speeds stay honest: a task reserves one whole GPU (``--device cuda``) or, on CPU, the cores its
  ``--threads`` asks for, so no two runs share them; rows record the node, the GPU's name and the
  launcher, and the reports never pool speeds across CPUs or GPUs of different kinds.
* A task that raises is a ``failed`` row with its error (the run failed, not the launcher); a worker
  or node that dies is a ``failed`` row saying so, after ``--retries N`` retries by Ray.
* Ctrl-C, or SIGTERM (what Slurm sends at the end of a job), cancels the outstanding tasks and shuts
  down a Ray started here; only whole rows are in the file, and the exit is 130 / 143 as for the serial
  launcher (``ray.init`` installs its own SIGTERM handlers, Python's and a C++ one that dumps a stack and
  aborts: the one in place before it is put back).
* The driver holds each run's claim (``bench.record.store.RunClaim``) until its row is in, so a second
  driver or a serial process on the same results file skips those runs instead of duplicating them
  (it does not wait for them: its summary says they were left to another process).
* A ``ray://`` address goes through Ray Client, which needs ``ray[client]`` (grpcio; in the ``ray``
  extra): without it the address is refused in one line before any work.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config.grids import Grid, GridError
from bench.launchers import Launcher, Option
from bench.launchers.driver import Driver, GridOutcome, RunSettings, run_label
from bench.record.store import RunClaim

CRASH_HOOK = "BENCH_TEST_CRASH_RUN"  # tests only: a worker running this label ("backbone method seed") dies
CRASH_ONCE = "BENCH_TEST_CRASH_ONCE_FILE"  # tests only: ...but only while this file does not exist
DISABLE_HANDLER = "RAY_DISABLE_FAILURE_SIGNAL_HANDLER"


def _ray():
    """Ray, imported so that the driver's core worker installs no C++ failure-signal handler: that handler
    takes SIGTERM too (a stack dump, then an abort). Ray reads the setting once, at import; it is taken out
    of the environment again so that the processes Ray starts (raylet, workers) keep their handlers."""
    fresh = "ray" not in sys.modules and DISABLE_HANDLER not in os.environ
    if fresh:
        os.environ[DISABLE_HANDLER] = "1"
    try:
        import ray
    except ImportError:
        raise GridError("--launcher ray needs Ray, an optional extra: pip install -e '.[ray]'") from None
    finally:
        if fresh:
            del os.environ[DISABLE_HANDLER]
    return ray


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: start Ray here
    retries: int = 0  # times Ray runs a task again when its worker or node dies

    @classmethod
    def parse(cls, values: dict[str, Any]) -> RayOptions:
        retries = values.get("retries") or 0
        if retries < 0:
            raise GridError(f"--retries must be 0 or more, got {retries}")
        return cls(values.get("ray_address"), retries)


def _task(spec: Any, context: dict[str, Any]) -> dict[str, Any]:
    """What a Ray worker runs: one run, its row back."""
    from bench.execute.unit import execute

    label = f"{spec.backbone} {spec.variant.label or spec.variant.method} {spec.seed}"
    if os.environ.get(CRASH_HOOK) == label:
        once = os.environ.get(CRASH_ONCE)
        if not once or not Path(once).exists():
            if once:
                Path(once).touch()
            os._exit(1)  # a dying worker, as an out-of-memory kill or a lost node would look
    return execute(spec, context, say=lambda _: None)


def _lost_row(spec: Any, context: dict[str, Any], error: str) -> dict[str, Any]:
    """The row of a run whose worker or node died: what the driver knows, failed with the reason."""
    from bench.execute.unit import row_identity

    return {**row_identity(spec, context), "status": "failed", "error": error}


def _check_client(address: str | None) -> None:
    """A ray:// address needs Ray Client's grpcio; without it Ray says so only after the task data is
    loaded, naming the package but not this project's extra."""
    if address and address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
        raise GridError(f"--ray-address {address}: ray:// addresses need Ray Client, which is not installed; "
                        "install it with pip install -e '.[ray]' (or pip install 'ray[client]'), or give the "
                        "cluster's HOST:6379 address from one of its nodes")


def _check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """A HOST:PORT (or ray://HOST:PORT) address must answer within seconds; Ray itself would retry for
    minutes before saying so."""
    import socket

    if not address or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise GridError(f"--ray-address {address!r} is not HOST:PORT; accepted: auto, HOST:PORT, ray://HOST:10001")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise GridError(f"--ray-address {address}: nothing answers there ({exc.strerror or exc}); start the "
                        "cluster first (ray start --head), or leave --ray-address out to start Ray here") from None


def _init(ray, address: str | None, debug: bool) -> None:
    """``ray.init``, with SIGTERM handled as it was before. While Ray starts, a SIGTERM is only noted, and
    acted on once ``ray.init`` has returned (Ray shut down, then the handler that was in place runs:
    ``Terminated``): Ray's own start-up handler calls ``sys.exit(15)`` part way through its start, which
    can leave the driver to crash at exit."""
    previous = signal.getsignal(signal.SIGTERM)
    main_thread = threading.current_thread() is threading.main_thread()
    try:
        import ray._private.utils as ray_utils
    except ImportError:
        ray_utils = None
    own = main_thread and callable(previous) and callable(getattr(ray_utils, "set_sigterm_handler", None))
    noted: list[int] = []
    if own:
        real = ray_utils.set_sigterm_handler
        ray_utils.set_sigterm_handler = lambda handler: None
        signal.signal(signal.SIGTERM, lambda signum, frame: noted.append(signum))
    try:
        ray.init(address=address, include_dashboard=False, logging_level="ERROR", log_to_driver=debug)
    except SystemExit as exc:  # a Ray whose start-up handler could not be held off
        if exc.code == signal.SIGTERM and callable(previous):
            previous(signal.SIGTERM, None)
        raise
    finally:
        if own:
            ray_utils.set_sigterm_handler = real
        if main_thread and previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if noted:
        ray.shutdown()
        previous(signal.SIGTERM, None)


class _SigtermNoted:
    """While the grid runs, notes a SIGTERM before passing it to the handler in place (``Terminated``):
    Ray's blocking calls (``ray.wait``, ``ray.get``) run that handler but raise a plain KeyboardInterrupt
    in place of its exception, so the driver would end as after Ctrl-C (130) instead of 143."""

    def __init__(self) -> None:
        self.handler = signal.getsignal(signal.SIGTERM)
        self.seen = False
        self.active = callable(self.handler) and threading.current_thread() is threading.main_thread()
        if self.active:
            signal.signal(signal.SIGTERM, self._note)

    def _note(self, signum: int, frame: Any) -> None:
        self.seen = True
        self.handler(signum, frame)

    def reraise(self) -> None:
        """Raise the handler's own exception if a SIGTERM was seen (call inside ``except``)."""
        if self.seen:
            self.handler(signal.SIGTERM, None)

    def restore(self) -> None:
        if self.active:
            signal.signal(signal.SIGTERM, self.handler)


def run_grid_ray(grid: Grid, results: Path, device: str = "cpu", threads: int = 2, rerun: bool = False,
                 data_dir: str | None = None, bucketing: bool = True, say: Callable[[str], None] = print,
                 debug: bool = False, address: str | None = None, retries: int = 0,
                 progress_every_s: float = 30.0) -> GridOutcome:
    """Run every missing run of ``grid`` as a Ray task and append the rows to ``results`` as they come."""
    settings = RunSettings(device, threads, rerun, data_dir, bucketing, False, debug)
    return run_ray(grid, results, settings, RayOptions.parse({"ray_address": address, "retries": retries}), say,
                   progress_every_s)


def run_ray(grid: Grid, results: Path, settings: RunSettings, options: RayOptions,
            say: Callable[[str], None] = print, progress_every_s: float = 30.0) -> GridOutcome:
    from bench.plan import prime_task

    ray = _ray()
    _check_client(options.address)
    driver = Driver(grid, results, settings, "ray", say)
    prime_task(driver.task, settings.data_dir, driver.task_ref)
    started_here = not ray.is_initialized()
    if started_here:
        _check_reachable(options.address)
        try:
            _init(ray, options.address, settings.debug)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = f"the Ray cluster at {options.address}" if options.address else "a local Ray"
            raise GridError(f"cannot start or join {where}: {str(exc).splitlines()[0] if str(exc) else exc!r}; "
                            "accepted --ray-address: auto, HOST:PORT, ray://HOST:10001, or none to start Ray "
                            "here") from None
    driver.open_log()
    pending: dict[Any, tuple[str, Any, RunClaim]] = {}
    sigterm = _SigtermNoted()
    try:
        _submit_and_gather(ray, driver, options, pending, progress_every_s)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (bench.__main__.Terminated)
        if not started_here:  # a Ray started here is shut down below, which ends its workers
            for ref in pending:  # not force=True: Ray 2.60 can abort the driver when a forced cancel races a finish
                ray.cancel(ref)
        driver.say(f"interrupted{' by SIGTERM' if sigterm.seen else ''}: {len(pending)} outstanding run(s) "
                   "cancelled; finished rows are recorded")
        sigterm.reraise()
        raise
    finally:
        sigterm.restore()
        for _, _, claim in pending.values():
            claim.release()
        if started_here:
            ray.shutdown()
        driver.close()
    say(driver.outcome.summary())
    return driver.outcome


def _submit_and_gather(ray, driver: Driver, options: RayOptions, pending: dict, progress_every_s: float) -> None:
    """Submit every run not recorded and not held elsewhere as a task, then record rows as tasks finish."""
    settings, outcome, say = driver.settings, driver.outcome, driver.say
    gpu = settings.device.startswith("cuda")
    remote = ray.remote(_task).options(num_cpus=0 if gpu else settings.threads, num_gpus=1 if gpu else 0,
                                       max_retries=options.retries, retry_exceptions=False)
    context = driver.context(progress=False)
    resources = ray.cluster_resources()
    slots = int(resources.get("GPU", 0) if gpu else resources.get("CPU", 0) // settings.threads)
    say(f"grid {driver.grid.name}: {driver.note}; launcher ray ({len(ray.nodes())} node(s), "
        f"{int(resources.get('CPU', 0))} CPUs, {int(resources.get('GPU', 0))} GPUs: {slots} run(s) at a "
        f"time, each on {'one GPU' if gpu else f'{settings.threads} core(s)'}); log {driver.log.path}")
    if slots < 1:
        raise GridError(f"the Ray cluster has no room for one run ({'a GPU' if gpu else f'{settings.threads} CPUs'}); "
                        f"it has {resources}")
    specs = driver.plan(progress=False)
    for index, spec in enumerate(specs, 1):
        rid, label = spec.run_id, run_label(index, len(specs), spec)
        if driver.finished(rid, label, announce=False):
            continue
        claim = driver.claim(rid)
        if claim is None:
            say(f"{label}: being run by another process; left to it")
            outcome.left_to_others += 1
            continue
        pending[remote.remote(spec, context)] = (label, spec, claim)
    if outcome.reused:
        say(f"{outcome.reused} run(s) already recorded, not run again (use --rerun to measure them)")
    say(f"{len(pending)} run(s) submitted")
    last_report = time.perf_counter()
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=progress_every_s)
        for ref in ready:
            label, spec, claim = pending.pop(ref)
            try:
                row = _row_of(ray, ref, spec, context, options.retries)
                driver.record(row, label)
            finally:
                claim.release()
        if ready or time.perf_counter() - last_report >= progress_every_s:
            running = min(len(pending), slots)
            say(f"progress: {len(outcome.rows)} done ({outcome.measured['failed']} failed), {running} running, "
                f"{len(pending) - running} queued, {driver.elapsed():.0f} s elapsed")
            last_report = time.perf_counter()


def _row_of(ray, ref: Any, spec: Any, context: dict[str, Any], retries: int) -> dict[str, Any]:
    """A finished task's row; a task that raised outside ``execute``, or whose worker died, as a failed row."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:  # an error outside execute(): report it as the run's
        return _lost_row(spec, context, f"{type(exc.cause).__name__}: {exc.cause}"[:400])
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.RayError) as exc:
        tries = f" after {retries + 1} attempts" if retries else ""
        return _lost_row(spec, context, f"the Ray worker running it died{tries} ({type(exc).__name__}); it may "
                                           "have run out of memory")


LAUNCHER = Launcher(
    "ray", "every missing run as a Ray task, here or on a cluster (pip install -e '.[ray]')",
    (Option("--ray-address", "join this Ray cluster (auto, HOST:PORT, or ray://host:10001); default: start Ray on "
            "this machine"),
     Option("--retries", "times Ray runs a task again when its worker or node dies", int, 0)),
    RayOptions.parse,
    lambda grid, results, settings, options, say=print: run_ray(grid, results, settings, options, say))
