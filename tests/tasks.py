"""Task functions shared by the tests (importable by workers under every start method)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time


def square(x):
    return x * x


def add(a, b):
    return a + b


def identity(x):
    return x


def pid_of(_=None):
    return os.getpid()


def busy_for(seconds):
    """Spin (no sleep: a busy CPU) for ``seconds``; return the worker's pid."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return os.getpid()


def sleep_return(seconds, value=None):
    time.sleep(seconds)
    return value


def put_print_return(q, x):
    """Put ``x`` into ``q``, print it on stdout, and return it after a short nap."""
    q.put(x)
    print(f"task {x}", flush=True)
    time.sleep(0.005)
    return x


def fail_on(x, bad=3):
    if x == bad:
        raise ValueError(f"bad input {x}")
    return x


class CustomError(Exception):
    pass


class UnpicklableError(Exception):
    """An exception whose rebuilding fails (its __init__ takes two arguments)."""

    def __init__(self, a, b):
        super().__init__(f"{a}-{b}")


def raise_custom(x):
    raise CustomError(f"custom {x}")


def raise_unrebuildable(x):
    raise UnpicklableError(x, "two")


class HoldsLock(Exception):
    def __init__(self, msg):
        super().__init__(msg)
        self.lock = threading.Lock()


def raise_unpicklable(x):
    raise HoldsLock(f"cannot pickle me {x}")


def return_lock(x):
    return threading.Lock() if x == 2 else x


def kill_self_on(x, bad=3, sig=signal.SIGKILL):
    if x == bad:
        os.kill(os.getpid(), sig)
        time.sleep(10)
    return x


def exit_on(x, bad=3):
    if x == bad:
        os._exit(7)
    return x


def segfault_on(x, bad=3):
    if x == bad:
        import faulthandler

        faulthandler._sigsegv()
    return x


def sys_exit_on(x, bad=3):
    if x == bad:
        sys.exit(5)
    return x


def hang_on(x, bad=3):
    if x == bad:
        time.sleep(3600)
    return x


def spawn_child_and_hang(pidfile):
    """Start a grandchild that would live for an hour, record its pid, then hang."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    with open(pidfile, "w") as f:
        f.write(str(child.pid))
    time.sleep(3600)


def spawn_child_and_sleep(pidfile, seconds):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    with open(pidfile, "w") as f:
        f.write(f"{os.getpid()} {child.pid}\n")
    time.sleep(seconds)


def spawn_child_and_hog_gil(pidfile, _seconds=None):
    """Start a grandchild, then run C code that holds the GIL for minutes (no signal checks)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    with open(pidfile, "w") as f:
        f.write(f"{os.getpid()} {child.pid}\n")
    return sum(range(10**11))


def daemonize_and_sleep(pidfile, seconds):
    """Start a daemon the classic way (fork, setsid, fork; the middle one exits), then sleep.

    The daemon writes "<worker pid> <daemon pid>" to ``pidfile`` and sleeps an hour.
    """
    worker = os.getpid()
    middle = os.fork()
    if middle == 0:
        os.setsid()
        if os.fork() == 0:
            with open(pidfile + ".tmp", "w") as f:
                f.write(f"{worker} {os.getpid()}\n")
            os.rename(pidfile + ".tmp", pidfile)
            time.sleep(3600)
        os._exit(0)
    os.waitpid(middle, 0)
    time.sleep(seconds)
    return worker


def daemon_that_exits(pidfile):
    """Daemonize a grandchild that exits at once: a zombie of the worker (a subreaper)."""
    middle = os.fork()
    if middle == 0:
        os.setsid()
        if os.fork() == 0:
            os._exit(0)
        os._exit(0)
    os.waitpid(middle, 0)
    time.sleep(0.05)  # the grandchild has exited by now
    return os.getpid()


_kept_children = []


def start_and_keep_child():
    """Start a child that exits at once and do not wait for it (a later task will)."""
    _kept_children.append(subprocess.Popen(["true"]))
    time.sleep(0.05)
    return os.getpid()


def wait_kept_children():
    return [p.wait() for p in _kept_children]


class SlowToPickleCallable:
    """A callable that takes ``seconds`` to pickle: widens a window in the caller's thread."""

    def __init__(self, seconds=0.5):
        self.seconds = seconds

    def __call__(self, x):
        return x

    def __reduce__(self):
        time.sleep(self.seconds)
        return (SlowToPickleCallable, (self.seconds,))


def fail_first_attempt(marker_dir, x):
    """SIGKILL self the first time x is seen (marker file), succeed afterwards."""
    marker = os.path.join(marker_dir, f"seen-{x}")
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return x * 10


def leak_memory(x, mb=40):
    sys._forklift_leak = [*getattr(sys, "_forklift_leak", []), bytearray(mb << 20)]
    return os.getpid()


def count_calls(marker_dir, x):
    with open(os.path.join(marker_dir, f"call-{x}-{os.getpid()}-{time.monotonic_ns()}"), "w"):
        pass
    return x


class ExitAtPickle:
    """Pickling it raises SystemExit (modelled on CPython's test_deadlock.py)."""

    def __reduce__(self):
        raise SystemExit(3)


class ErrorAtPickle:
    def __reduce__(self):
        raise RuntimeError("error while pickling")


class CrashAtPickle:
    def __reduce__(self):
        import faulthandler

        faulthandler._sigsegv()


class ErrorAtUnpickle:
    def __reduce__(self):
        return _raise_runtime, ()


class ExitAtUnpickle:
    def __reduce__(self):
        return _raise_exit, ()


class CrashAtUnpickle:
    def __reduce__(self):
        return _crash, ()


def _raise_exit():
    raise SystemExit(3)


def _raise_runtime():
    raise RuntimeError("error while unpickling")


def _crash():
    import faulthandler

    faulthandler._sigsegv()


class ExitAtReduceError(Exception):
    """An exception that cannot be pickled: its __reduce__ raises SystemExit."""

    def __reduce__(self):
        raise SystemExit(3)


class ExitAtStrError(Exception):
    """An exception whose __str__ raises SystemExit (traceback.format_exception calls it)."""

    def __str__(self):
        raise SystemExit(4)


def raise_named(kind, marker_dir=None):
    """Raise the named exception class; with ``marker_dir``, leave one file per call."""
    if marker_dir is not None:
        count_calls(marker_dir, kind)
    raise globals()[kind]("from the task")


def make(kind):
    """Return an instance of the named class (so the result is made in the worker)."""
    return globals()[kind]()


def take(obj):
    return type(obj).__name__


def nested_pool_sum(n):
    """A task that starts its own forklift pool (stdlib workers are daemonic and cannot)."""
    import forklift

    with forklift.Pool(2) as inner:
        return sum(inner.map(square, range(n)))


def nbytes(blob):
    return len(blob)


def make_bytes(n):
    return bytes(n)


def hog_gil(n):
    """A C-level loop that holds the GIL throughout (the worker's reader thread cannot run)."""
    return sum(range(n))


class SleepAtUnpickle:
    """Unpickling it (in the worker, as an argument) takes an hour."""

    def __reduce__(self):
        return _sleep_then_zero, (3600,)


class SleepAtPickle:
    """Pickling it (in the worker, as a result) takes an hour."""

    def __reduce__(self):
        time.sleep(3600)


def _sleep_then_zero(seconds):
    time.sleep(seconds)
    return 0


def run_sleeping_child(seconds):
    """Wait for a child process; when a timeout kills the child first, this would return -9."""
    return subprocess.run([sys.executable, "-c", f"import time; time.sleep({seconds})"]).returncode


def slow_child_or_echo(x):
    if x == "slow":
        return subprocess.run([sys.executable, "-c", "import time; time.sleep(30)"]).returncode
    return x


def logged_square(log_and_x):
    """x * x, after appending x to a log file (which tasks ran, across processes and runs)."""
    log, x = log_and_x
    time.sleep(0.01)
    with open(log, "a") as f:
        f.write(f"{x}\n")
    return x * x


def first_byte(blob):
    return blob[0]


def finish_time(x):
    """Sleep (1.5 s for item 0, 5 ms for the rest) and say when it finished."""
    time.sleep(1.5 if x == 0 else 0.005)
    return time.time()


def _restore_slowly(x, seconds):
    time.sleep(seconds)
    return x


class SlowToUnpickle:
    """An argument whose unpickling (in the worker) takes ``seconds``."""

    def __init__(self, x, seconds=0.8):
        self.x, self.seconds = x, seconds

    def __reduce__(self):
        return (_restore_slowly, (self.x, self.seconds))


class SlowToPickle:
    """A result whose pickling (in the worker) takes ``seconds``."""

    def __init__(self, seconds=0.8):
        self.seconds = seconds

    def __reduce__(self):
        time.sleep(self.seconds)
        return (int, (7,))


def slow_to_pickle_result(seconds):
    return SlowToPickle(seconds)


def run_script(path, source, python_warnings):
    """Write ``source`` to ``path`` and run it in a fresh interpreter with PYTHONWARNINGS set."""
    import subprocess
    import sys

    path.write_text(source)
    env = dict(os.environ, PYTHONWARNINGS=python_warnings)
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=60, env=env)


def set_env(name, value):
    """An initializer: set an environment variable in the worker."""
    os.environ[name] = value


def get_env(name):
    return os.environ.get(name)


def log_and_square(x):
    """Log at several levels (logger "forklift.test.work"), with an extra field; return x*x."""
    import logging

    log = logging.getLogger("forklift.test.work")
    log.debug("debug %d", x)
    log.info("info %d", x)
    log.warning("warning %d", x, extra={"detail": {"x": x}})
    logging.getLogger("forklift.test.quiet").info("quiet %d", x)
    return x * x


def log_then_die(x):
    import logging

    logging.getLogger("forklift.test.work").error("last words %d", x)
    os._exit(7)


def log_exception(x):
    import logging

    try:
        raise ValueError(f"bad {x}")
    except ValueError:
        logging.getLogger("forklift.test.work").exception("failed on %d", x)
    raise ValueError(f"bad {x}")


def log_in_initializer():
    import logging

    logging.getLogger("forklift.test.work").warning("initializer ran")


def log_unpicklable_extra():
    import logging
    import threading

    logging.getLogger("forklift.test.work").warning("with a lock", extra={"lock": threading.Lock()})
    return "logged"
