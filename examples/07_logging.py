"""Beyond the tutorial: logging from pool workers, with no QueueHandler to write.

Under forkserver and spawn (the defaults here and in Python 3.14) a worker starts with
an unconfigured ``logging``, so the records of a task went nowhere the program set up.
forklift's pools send them to the parent, whose handlers write them, each tagged with
the task it came from (``record.forklift_task``) and the worker's pid.
"""

import logging
import sys

import forklift

log = logging.getLogger("resize")


def resize(name: str) -> str:
    log.info("resizing %s", name)
    if name.endswith(".gif"):
        log.warning("%s: animated, first frame only", name)
    log.debug("not shown: the parent's level is INFO")
    return name.upper()


def main() -> None:
    logging.basicConfig(
        stream=sys.stdout,  # stdout here so that the example's output reads in order
        level=logging.INFO,
        format="%(levelname)s task=%(forklift_task)s %(message)s",
    )
    with forklift.Pool(2) as pool:
        done = pool.map(resize, ["a.png", "b.gif", "c.jpg"], chunksize=3)  # one worker, in order
    print("results:", done)


if __name__ == "__main__":
    main()
