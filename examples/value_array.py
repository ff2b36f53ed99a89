"""Tutorial: 进程同步 > 共享内存 (Value and Array in shared memory).

forklift.Value / forklift.Array as in multiprocessing; in addition they can be
passed as Pool task arguments (the stdlib raises "RuntimeError: Synchronized
objects should only be shared between processes through inheritance"): the
last part counts with a shared Value from Pool tasks.
"""

# Fixes to the tutorial's code:
# - "pritn(arr[:])" -> print(arr[:]);
# - the comment called Value('d', ...) an integer ("实型" is real, 'd' is a double);
#   Array('i', ...) is the integer array.

import forklift


def f(n, a) -> None:
    n.value = 3.1415926
    for i in range(len(a)):
        a[i] = a[i] * a[i]


def add_one(counter, _i: int) -> None:
    with counter.get_lock():  # += on a shared value is a read and a write: lock it
        counter.value += 1


def main() -> None:
    num = forklift.Value("d", 0.0)  # a double
    arr = forklift.Array("i", range(10))  # an array of C ints
    p = forklift.Process(target=f, args=(num, arr))
    p.start()
    p.join()
    print(num.value)
    print(arr[:])

    counter = forklift.Value("i", 0)
    with forklift.Pool(2) as pool:
        pool.starmap(add_one, [(counter, i) for i in range(100)])
    print(f"counter after 100 Pool tasks: {counter.value}")


if __name__ == "__main__":
    main()
