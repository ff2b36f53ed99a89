"""A program for the parent-death and Ctrl-C tests: a pool busy with long tasks.

usage: victim.py START_METHOD OUT_DIR MODE
  MODE = grandchildren  each task starts a grandchild and sleeps (parent-death test)
  MODE = grandchildren-eof-only   the same with PR_SET_PDEATHSIG and the pidfd guard
                        disarmed (fork only: the disarming reaches forked workers only)
  MODE = daemons        each task daemonizes a grandchild (fork, setsid, fork) and sleeps
  MODE = gil            each task starts a grandchild, then holds the GIL in C code for minutes
  MODE = fork-os | fork-process | fork-executor   grandchildren, and then the victim
                        forks a child that outlives it (os.fork(), a fork-context
                        multiprocessing.Process, a stdlib ProcessPoolExecutor(fork))
  MODE = leak-fds       grandchildren, and then an exec'd `sleep` inherits every
                        descriptor the victim holds (the worker pipes' parent ends, the
                        fork server's alive fd): only the pidfd guard can see the death
  MODE = map            a `with Pool` block runs map over long sleeps (Ctrl-C test)
  MODE = noisy-map      a `with Pool` block runs a long map whose tasks put into a Queue
                        and print on stdout (the workers must die quietly)
Prints one JSON line with the worker pids once the tasks run, then (fork and leak
modes) one line with the pid of the child that outlives it.
"""

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import forklift

import tasks


def main():
    signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever we inherited
    method, out_dir, mode = sys.argv[1:4]
    if mode == "grandchildren-eof-only":
        from forklift._engine import worker

        worker._prctl = lambda option, value: None  # no PDEATHSIG (nor subreaper)
        worker._ParentGuard.alive = lambda self: True
        original = worker._ParentGuard.__init__

        def no_pidfd(self, parent, slot):
            original(self, parent, slot)
            self.pidfd = -1

        worker._ParentGuard.__init__ = no_pidfd
        mode = "grandchildren"
    if mode == "map":
        run_map(method, out_dir)
        return
    if mode == "noisy-map":
        run_noisy_map(method)
        return
    pool = forklift.Pool(2, start_method=method)
    task = {"daemons": tasks.daemonize_and_sleep, "gil": tasks.spawn_child_and_hog_gil}.get(
        mode, tasks.spawn_child_and_sleep
    )
    for i in range(2):
        pool.apply_async(task, (os.path.join(out_dir, f"task{i}"), 60))
    print(json.dumps(pool.worker_pids()), flush=True)
    if mode.startswith("fork-") or mode == "leak-fds":
        print(start_survivor(mode), flush=True)
    time.sleep(120)


_kept = []


def start_survivor(mode):
    """A child of the victim that lives on after the victim's SIGKILL; returns its pid."""
    if mode == "fork-os":
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        return pid
    if mode == "fork-process":
        import multiprocessing

        proc = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
        proc.start()
        return proc.pid
    if mode == "fork-executor":
        import concurrent.futures
        import multiprocessing

        ex = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
        ex.submit(time.sleep, 0).result()
        _kept.append(ex)  # dropped, it would shut its worker down at once
        return next(iter(ex._processes))
    fds = [int(fd) for fd in os.listdir("/proc/self/fd") if int(fd) > 2]
    held = []
    for fd in fds:
        try:
            os.set_inheritable(fd, True)
            held.append(fd)
        except OSError:
            pass  # the listing's own descriptor, closed by now
    return subprocess.Popen(["sleep", "60"], pass_fds=held).pid


def run_map(method, out_dir):
    with forklift.Pool(2, start_method=method) as pool:
        print(json.dumps(pool.worker_pids()), flush=True)
        try:
            pool.map(tasks.sleep_return, [2.0] * 20, chunksize=1)
        except KeyboardInterrupt:
            with open(os.path.join(out_dir, "interrupted"), "w") as f:
                f.write(str(time.monotonic()))
            raise


def run_noisy_map(method):
    q = forklift.Queue()
    with forklift.Pool(2, start_method=method) as pool:
        print(json.dumps(pool.worker_pids()), flush=True)
        pool.starmap(tasks.put_print_return, [(q, i) for i in range(10**6)], chunksize=1)


if __name__ == "__main__":
    main()
