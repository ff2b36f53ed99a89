"""Tutorial: 进程间通信 > Queue > 上下文对象context的Queue (a Queue from a spawn context).

forklift.get_context(method) returns a context whose Process, Queue, Lock, ...
all use that start method, as multiprocessing.get_context does.
"""

# Fixes to the tutorial's code:
# - ctx.Processing -> ctx.Process (an AttributeError);
# - "hello word" -> "hello world";
# - q.get() before p.join(), kept: joining a process that still has queued items
#   to flush can deadlock (the multiprocessing docs warn about it).

import forklift


def foo(q) -> None:
    q.put("hello world")


def main() -> None:
    ctx = forklift.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=foo, args=(q,))
    p.start()
    print(q.get(timeout=10))
    p.join()
    print(f"start method: {ctx.get_start_method()}")


if __name__ == "__main__":
    main()
