"""Every script in examples/ runs on its own and prints what it should.

Each example runs as ``python examples/<name>.py`` in a fresh temporary
directory, as a user would run it. A case lists the lines its output must hold:
a plain string is a whole line printed by the main process (whose order and
text are fixed); ``Part(...)`` is a piece of text that must appear somewhere,
for lines printed by child processes, which can interleave. A new example
without a case here fails ``test_every_example_has_a_case``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TIMEOUT = 30  # seconds per example; each takes a few at most


class Part(str):
    """Text that must appear somewhere in stdout, not necessarily as a whole line."""


FORK = ["child: fork() returned 0", "parent: fork() returned the child's pid"]
SQUARES = "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]"
DOUBLES = "{0: 0, 1: 2, 2: 4, 3: 6, 4: 8, 5: 10, 6: 12, 7: 14, 8: 16, 9: 18}"
MESSAGES = [f"{kind} message {i}" for kind in ("put", "got") for i in range(3)]
RESULT_LINES = [Part("Result: 7701 * 7701 = 59305401"), Part("Result: 8164 * 8164 = 66650896")]

EXPECTED: dict[str, list[str]] = {
    "00_fork.py": [
        *FORK,
        "child: my parent is the process that called fork(): True",
        "parent: child exited with code 0",
    ],
    "01_process_basic.py": [
        "Child process will start.",
        Part("Run child process test ("),
        "Child process end.",
        "exit code: 0",
        "result: TEST",
        "result raised ZeroDivisionError: division by zero",
    ],
    "01_process_many.py": [
        "alive children: process1, process2",
        "main process is running",
        Part("process1 is running (3/3)"),
        Part("process2 is running (3/3)"),
        "alive children after join: 0",
    ],
    "01_process_name.py": [
        Part("Starting foo_process"),
        Part("Exiting foo_process"),
        "named process ran as: foo_process",
        "default name starts with 'Process-': True",
    ],
    "01_process_daemon.py": [
        Part("Exiting NO_background_process"),
        "main exits; the daemon is still running: True",
    ],
    "01_process_terminate.py": [
        "Process before execution: alive=False",
        "Process running: alive=True",
        "Process terminated and joined: alive=False",
        "Process exit code: -15 (-SIGTERM is -15)",
    ],
    "02_process_subclass.py": [
        "MainProcess is running (3/3)",
        Part("ChildProcess is running (3/3)"),
        "ChildProcess exit code: 0",
    ],
    "03_pool_apply_async.py": [
        "Waiting for all subprocesses done...",
        *[Part(f"Task {i} done (ran") for i in range(5)],
        "All subprocesses done.",
    ],
    "03_pool_with.py": [
        "100",
        SQUARES,
        "0",
        "1",
        "4",
        "get(timeout=0.3) raised multiprocessing.TimeoutError",
        "[1, 2, 3, 4, 5]",
        "apply_async(..., timeout=0.3) raised forklift.TaskTimeout",
    ],
    "03_pool_row_means.py": ["[4.5, 24.5, 54.5, 84.5]"],
    "03_pool_faults.py": [
        "results: [0, 1, 4, 'WorkerLostError', 16]",
        "map after a worker died: [0, 1, 4]",
        "second attempt succeeded",
        "slow task: TaskTimeout after 0.5 s",
        "pool still works: [0, 0]",
    ],
    "04_executor.py": [
        "fib results: [6765, 10946, 17711, 28657, 46368, 75025, 121393, 196418]",
        "fib(20) with a 10 s task timeout: 6765",
        "sleep results: [0.2, 0.2, 0.2, 0.2, 0.2, 0.2]",
    ],
    "05_asyncio.py": [
        "apply: 44b42987d3f8",
        "map: ['0903b804ef05', '44b42987d3f8', 'e1981380d7d9']",
        "submit + gather: ['0903b804ef05', '44b42987d3f8', 'e1981380d7d9']",
        "imap_unordered: 40 digests",
        "gave up on stuck(60) at the 0.5 s timeout",
        "the pool goes on: 44b42987d3f8",
        "the worker that ran stuck(60) was killed and replaced: True",
        "the event loop ran all along: True",
    ],
    "06_joblib.py": [
        "best max_depth: None",
        "cross-validation accuracy: 0.96",
        "a worker was killed and its batch run again: True [0, 1, 4, 9, 16, 25]",
    ],
    "07_logging.py": [
        "INFO task=0 resizing a.png",
        "INFO task=1 resizing b.gif",
        "WARNING task=1 b.gif: animated, first frame only",
        "INFO task=2 resizing c.jpg",
        "results: ['A.PNG', 'B.GIF', 'C.JPG']",
    ],
    "manager_dict_list.py": [
        "('name', 'Li Lei')",
        "('address', 'Yantai')",
        "[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]",
        "3",
        "result(): {'name': 'Li Lei', 'age': 18}",
    ],
    "manager_dict_workers.py": [f"Results: {DOUBLES}", f"Pool.map: {DOUBLES}"],
    "manager_server.py": [
        *[f"client put| put message {i}" for i in range(3)],
        *[f"client get| got message {i}" for i in range(3)],
        "server: queue empty at the end: True",
    ],
    "manager_client.py": [*MESSAGES, "a wrong authkey is refused: AuthenticationError"],
    "manager_custom_class.py": [
        "you called Foo.f()",
        "f1 has _h: False; exposed: ['f', 'g']",
        "you called Foo._h()",
        "f2 has f: False; exposed: ['_h', 'g']",
        "<0> <1> <4> <9> <16> <25> <36> <49> <64> <81>",
        "op.add(23, 45) = 68",
        "op.pow(2, 94) = 19807040628566084398385987584",
        Part("add and pow among them: True"),
    ],
    "queue_read_write.py": [Part("Get C from queue."), "reader got: ['A', 'B', 'C']"],
    "queue_producer_consumer.py": [
        Part("Process Producer: item 240 appended"),
        Part("Process Consumer: item 240 popped"),
        Part("the queue is done"),
        "consumed 5 items, same as produced: True",
    ],
    "queue_context.py": ["hello world", "start method: spawn"],
    "queue_pool.py": ["reader got from the Queue: itcast", "End"],
    "pipe.py": ["hello world"],
    "pipe_producer_consumer.py": ["consumer received: produce over"],
    "pipe_pipeline.py": [SQUARES, "End"],
    "value_array.py": ["3.1415926", SQUARES, "counter after 100 Pool tasks: 100"],
    "shared_array.py": [
        "first column as the parent sees it: [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]",
        "parent's view matches the tasks' writes: True",
    ],
    "lock.py": [
        "Process writers: [('process1 write', 10), ('process2 write', 10)]",
        "Pool tasks: [('task0 write', 10), ('task1 write', 10), ('task2 write', 10), ('task3 write', 10)]",
    ],
    "rlock.py": [
        "RLock taken 4 times, nested, by one process",
        "Lock: second acquire timed out: a plain Lock is not reentrant",
    ],
    "event.py": [
        "before set(): is_set=False, any worker done: False",
        *[f"hello world {i}" for i in range(5)],
        "after clear(): wait(0.1) returns False",
    ],
    "semaphore.py": [
        "process3 inside while 1 and 2 hold the semaphore: False",
        "process3 inside after process1 left: True",
        "most processes inside at once: 2",
    ],
    "barrier.py": [
        Part("process p3 - test_without_barrier did not wait"),
        "p1 arrived first and waited for p2: True",
        "p1 and p2 passed together: True",
    ],
    "listener_client.py": [
        "listening on 127.0.0.1",
        "connection accepted from 127.0.0.1",
        "client received: [('server is alive', 0), ('server is alive', 1), ('server is alive', 2)]",
        "client with a wrong key got: ['refused: AuthenticationError']",
        "the next client got: ['welcome']",
    ],
    "subprocess_call.py": ["hello from a child process", "Exit code: 0"],
    "subprocess_communicate.py": ["> set q=mx: ok", "> python.org: ok", "Exit code: 0"],
    "subprocess_funcs.py": ["1.0"],
    "subprocess_main.py": [
        'request {"a": 1, "b": 1}: exit code 0',
        "  out: 1.0",
        'request {"a": 1, "b": 0}: exit code 1',
        "  err: ZeroDivisionError: division by zero",
    ],
    "subprocess_pool.py": [
        "answer: exit code 0, output '42'",
        "fails: exit code 3, output ''",
        "hangs: TaskTimeout after 2 s",
        "the hung command was killed with its worker: True",
        "the pool goes on: (0, '42')",
    ],
    "distributed_master.py": [
        "Put task 7701...",
        Part("on the cluster at tls://127.0.0.1:"),
        *RESULT_LINES,
        Part("worker| Connect to server tls://127.0.0.1:"),
        "worker| run task 7701 * 7701...",
        "worker| worker exit.",
        "master exit.",
    ],
    "distributed_worker.py": [
        Part("Connect to server tls://127.0.0.1:"),
        "run task 7701 * 7701...",
        "worker exit.",
        "master| Put task 7701...",
        *RESULT_LINES,
        "master| master exit.",
    ],
    "file_copier.py": [
        Part("100.00% ("),
        Part("(sub/file_11.bin)"),
        "copied 12 files, all identical: True",
        "no partial files left: True",
    ],
    "journal_timeline.py": [
        "119 results, 1 error: ValueError('bad input 117')",
        "journal: 120 tasks, 119 done, 1 failed, 1 retried",
        "wrote timeline.html",
    ],
    "kill_tree.py": [
        "kill_tree(pid) signalled the child and both grandchildren: True",
        "all gone: True",
        "child exit code: -9",
        "Process.kill_tree(): all gone: True",
    ],
}

# Text that must NOT appear in stdout.
ABSENT: dict[str, list[str]] = {
    "01_process_daemon.py": ["Exiting background_process"],  # the daemon was killed at exit
}

# Examples whose stderr may hold a traceback on purpose (a child process's
# exception, printed by the child before it exits).
NOISY_STDERR = {"01_process_basic.py"}


# Known forklift bugs an example shows; the case runs, and fails, until they are fixed.
KNOWN_BUGS: dict[str, str] = {}


def test_every_example_has_a_case():
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert scripts, f"no examples found in {EXAMPLES}"
    assert scripts == sorted(EXPECTED), "add a case to EXPECTED for each new example (and drop stale ones)"


# Examples that pass forklift's shared objects (Queue, Value, SharedArray) to Pool tasks: those
# are reopened through /proc, so they do not run with FORKLIFT_WITHOUT=proc (make
# test-fallbacks); passed to a Process as it starts, they do.
NEEDS_PROC = {"queue_pool.py", "shared_array.py", "value_array.py"}


def _marks(name: str) -> list[pytest.MarkDecorator]:
    marks = [pytest.mark.xfail(reason=KNOWN_BUGS[name], strict=False)] if name in KNOWN_BUGS else []
    return [*marks, pytest.mark.needs("proc")] if name in NEEDS_PROC else marks


@pytest.mark.parametrize("name", [pytest.param(name, marks=_marks(name)) for name in sorted(EXPECTED)])
def test_example(name: str, tmp_path: Path) -> None:
    # Buffered stdout, as a user's redirected output: with PYTHONUNBUFFERED each print
    # writes its text and its newline separately, and lines of concurrent processes mix.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    report = f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert done.returncode == 0, report
    lines = done.stdout.splitlines()
    for expected in EXPECTED[name]:
        found = expected in done.stdout if isinstance(expected, Part) else expected in lines
        assert found, f"missing {expected!r}\n{report}"
    for text in ABSENT.get(name, []):
        assert text not in done.stdout, f"unexpected {text!r}\n{report}"
    if name not in NOISY_STDERR:
        assert "Traceback" not in done.stderr and "Warning" not in done.stderr, report
