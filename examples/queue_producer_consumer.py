"""Tutorial: 进程间通信 > Queue > 生产者-消费者队列 (Producer and Consumer Process subclasses).

forklift.Process subclasses sharing a forklift.Queue. What ``run()`` returns
comes back through ``result()`` in a subclass too, so the main process can
compare what was produced with what was consumed without a second queue.
"""

# Fixes to the tutorial's code:
# - the consumer stopped as soon as queue.empty() was true, which can happen before
#   the producer's first put (and empty() is only a snapshot anyway): it could
#   quit early and leave items behind. The producer now ends with a None sentinel;
# - "mac无法运行" (does not run on macOS): qsize() raises NotImplementedError there;
#   the size print (racy everywhere) is gone;
# - the items come from a seeded random.Random, so a run is repeatable;
# - 10 items with 1-3 s sleeps -> 5 items with 0.02 s sleeps.

import random
import time

import forklift


class Producer(forklift.Process):
    def __init__(self, queue) -> None:
        super().__init__()
        self.queue = queue

    def run(self) -> list[int]:
        rng = random.Random(2024)
        items = [rng.randint(0, 256) for _ in range(5)]
        for item in items:
            self.queue.put(item)
            print(f"Process Producer: item {item} appended to queue {self.name}", flush=True)
            time.sleep(0.02)
        self.queue.put(None)  # tell the consumer that nothing more comes
        return items


class Consumer(forklift.Process):
    def __init__(self, queue) -> None:
        super().__init__()
        self.queue = queue

    def run(self) -> list[int]:
        items = []
        while (item := self.queue.get(timeout=10)) is not None:
            print(f"Process Consumer: item {item} popped by {self.name}", flush=True)
            items.append(item)
        print("the queue is done", flush=True)
        return items


def main() -> None:
    queue = forklift.Queue()
    process_producer = Producer(queue)
    process_consumer = Consumer(queue)
    process_producer.start()
    process_consumer.start()
    produced = process_producer.result(timeout=10)  # result() joins the process
    consumed = process_consumer.result(timeout=10)
    print(f"consumed {len(consumed)} items, same as produced: {consumed == produced}")


if __name__ == "__main__":
    main()
