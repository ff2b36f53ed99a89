"""Tutorial: 进程池 > Pool > 并发计算二维数组每行的平均值 (mean of each row).

forklift.Pool.map, unchanged from multiprocessing; no ``chunksize`` to choose
(chunks adapt to how long tasks take), and ``progress=True`` would draw a bar.
"""

# Fixes to the tutorial's code: none needed (the wrapper f() around mean is
# dropped: statistics.mean is passed directly).

from statistics import mean

import forklift


def main() -> None:
    x = [list(range(10)), list(range(20, 30)), list(range(50, 60)), list(range(80, 90))]
    with forklift.Pool(5) as p:
        print(p.map(mean, x))  # [4.5, 24.5, 54.5, 84.5]


if __name__ == "__main__":
    main()
