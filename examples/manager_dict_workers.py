"""Tutorial: 管理进程间的状态 > Manager > 示例2 (ten processes fill one managed dict).

forklift.Manager().dict() as in multiprocessing. The forklift way for this
pattern, when each worker only produces a value, is a Pool map (last lines).
"""

# Fixes to the tutorial's code:
# - the manager is used in a with block, so its server process is shut down;
# - the dict's order depends on which process finished first: printed sorted.

import forklift


def worker(dictionary, key: int, item: int) -> None:
    dictionary[key] = item


def double(key: int) -> tuple[int, int]:
    return key, key * 2


def main() -> None:
    with forklift.Manager() as mgr:
        dictionary = mgr.dict()
        jobs = [forklift.Process(target=worker, args=(dictionary, i, i * 2)) for i in range(10)]
        for j in jobs:
            j.start()
        for j in jobs:
            j.join()
        print("Results:", dict(sorted(dictionary.items())))

    with forklift.Pool(2) as pool:
        print("Pool.map:", dict(pool.map(double, range(10))))


if __name__ == "__main__":
    main()
