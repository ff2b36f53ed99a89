"""Tutorial: 进程间通信 > Pipe (third example: a two-stage pipeline ending in EOFError).

Process 1 sends 0..9 down pipe 1, process 2 squares them into pipe 2, the
parent prints them; each reader sees EOFError once every copy of the writing
end is closed, which is why each process closes the ends it does not use.
forklift.Pipe and forklift.Process, as in multiprocessing.
"""

# Fixes to the tutorial's code:
# - the docstring said the numbers are 1-9: range(10) is 0-9;
# - the parent also closes the ends it does not use (pipe_1[1]) and, at the end,
#   its reading end;
# - the parent joins both processes.

import forklift


def create_items(pipe) -> None:
    """Send 0..9."""
    output_pipe, _ = pipe
    for item in range(10):
        output_pipe.send(item)
    output_pipe.close()


def multiply_items(pipe_1, pipe_2) -> None:
    """Square what arrives on pipe 1 and send it on pipe 2."""
    close, input_pipe = pipe_1
    close.close()  # this process never writes to pipe 1
    output_pipe, _ = pipe_2
    try:
        while True:
            item = input_pipe.recv()
            output_pipe.send(item * item)
    except EOFError:  # every writing end of pipe 1 is closed
        output_pipe.close()


def main() -> None:
    pipe_1 = forklift.Pipe(True)  # duplex: both ends can send and receive
    process_pipe_1 = forklift.Process(target=create_items, args=(pipe_1,))
    process_pipe_1.start()
    pipe_2 = forklift.Pipe(True)
    process_pipe_2 = forklift.Process(target=multiply_items, args=(pipe_1, pipe_2))
    process_pipe_2.start()
    pipe_1[0].close()
    pipe_1[1].close()
    pipe_2[0].close()
    squares = []
    try:
        while True:
            squares.append(pipe_2[1].recv())
    except EOFError:
        print(squares)
        print("End")
    pipe_2[1].close()
    process_pipe_1.join()
    process_pipe_2.join()


if __name__ == "__main__":
    main()
