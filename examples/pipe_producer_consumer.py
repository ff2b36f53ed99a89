"""Tutorial: 进程间通信 > Pipe (second example: a producer process and a consumer process).

forklift.Pipe and forklift.Process; the consumer returns what it received
through Process.result().
"""

# Fixes to the tutorial's code:
# - "from multiprocessing import process, Pipe" -> Process (a NameError);
# - a tab-indented line among spaces (a TabError);
# - the consumer's message is returned and printed by the parent.

import forklift


def producer(pipe) -> None:
    pipe.send("produce over")


def consumer(pipe) -> str:
    message = pipe.recv()
    print(message, flush=True)
    return message


def main() -> None:
    receive_pipe, send_pipe = forklift.Pipe()
    my_producer = forklift.Process(target=producer, args=(send_pipe,))
    my_consumer = forklift.Process(target=consumer, args=(receive_pipe,))
    my_producer.start()
    my_consumer.start()
    my_producer.join()
    print(f"consumer received: {my_consumer.result(timeout=10)}")


if __name__ == "__main__":
    main()
