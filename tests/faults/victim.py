"""A program for the parent-death and Ctrl-C tests: a pool busy with long tasks.

usage: victim.py START_METHOD OUT_DIR MODE
  MODE = grandchildren  each task starts a grandchild and sleeps (parent-death test)
  MODE = grandchildren-eof-only   the same with PR_SET_PDEATHSIG disarmed (fork only)
  MODE = map            a `with Pool` block runs map over long sleeps (Ctrl-C test)
Prints one JSON line with the worker pids once the tasks run.
"""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import forklift

import tasks


def main():
    signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever we inherited
    method, out_dir, mode = sys.argv[1:4]
    if mode == "grandchildren-eof-only":
        # Disarm PR_SET_PDEATHSIG (inherited by fork children): only the pipe-EOF guard remains.
        from forklift._engine import worker

        worker._arm_parent_death_signal = lambda: None
        mode = "grandchildren"
    if mode == "grandchildren":
        pool = forklift.Pool(2, start_method=method)
        for i in range(2):
            pool.apply_async(tasks.spawn_child_and_sleep, (os.path.join(out_dir, f"task{i}"), 60))
        print(json.dumps(pool.worker_pids()), flush=True)
        time.sleep(120)
    else:
        with forklift.Pool(2, start_method=method) as pool:
            print(json.dumps(pool.worker_pids()), flush=True)
            try:
                pool.map(tasks.sleep_return, [2.0] * 20, chunksize=1)
            except KeyboardInterrupt:
                with open(os.path.join(out_dir, "interrupted"), "w") as f:
                    f.write(str(time.monotonic()))
                raise


if __name__ == "__main__":
    main()
