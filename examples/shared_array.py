"""Tutorial: 进程同步 > 共享内存, for numpy: a big array shared by Pool tasks without copying.

The tutorial's Value/Array hold C scalars; for large numeric data forklift has
forklift.SharedArray(shape, dtype): a numpy array in shared memory. Passed to a
task it travels by name (a few bytes), and the task's view writes into the same
memory the parent sees. The stdlib way (multiprocessing.shared_memory by hand)
needs the name, shape and dtype passed around, and under spawn/forkserver its
resource_tracker warns about "leaked" segments or unlinks them too early.
``forklift.shared_array(shape, dtype)`` is the same as ``SharedArray(shape, dtype)``;
``SharedArray.from_array(a)`` copies an existing array in.
"""

import numpy as np

import forklift

ROWS, COLS = 8, 100_000


def scale_row(arr, row: int, factor: float) -> float:
    arr[row] *= factor  # in place, in shared memory: nothing is sent back
    return float(arr[row].sum())


def main() -> None:
    # zero-filled; the with block (or close()) gives the memory up, as does the
    # owner's exit, even by SIGKILL: there is no file in /dev/shm to leak
    with forklift.SharedArray((ROWS, COLS), np.float64) as arr:
        arr[:] = 1.0
        with forklift.Pool(2) as pool:
            sums = pool.starmap(scale_row, [(arr, row, row + 1) for row in range(ROWS)])
        print(f"row sums returned by the tasks: {sums}")
        print(f"first column as the parent sees it: {arr[:, 0].tolist()}")
        print(f"parent's view matches the tasks' writes: {bool((arr.sum(axis=1) == sums).all())}")


if __name__ == "__main__":
    main()
