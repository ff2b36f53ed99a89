"""Tutorial: 管理进程间的状态 > Manager > 示例1 (a dict, a list and a Value shared through a Manager).

forklift.Manager() is multiprocessing's SyncManager: a server process holds the
objects and other processes use them through proxies. When a child only needs
to hand back a value, forklift.Process.result() is simpler (last lines).
"""

# Fixes to the tutorial's code:
# - print(1) -> print(l): the tutorial printed the number 1 instead of the list;
# - the list is named ``shared_list`` (a lone ``l`` reads as ``1``, the cause of the typo).

import forklift


def f(d, shared_list, t) -> None:
    d["name"] = "Li Lei"
    d["age"] = 18
    d["sex"] = "Male"
    d["address"] = "Yantai"
    shared_list.reverse()
    t.value = 3


def person() -> dict:
    return {"name": "Li Lei", "age": 18}


def main() -> None:
    with forklift.Manager() as manager:
        d = manager.dict()
        shared_list = manager.list(range(10))
        t = manager.Value("i", 0)
        p = forklift.Process(target=f, args=(d, shared_list, t))
        p.start()
        p.join()
        for item in d.items():
            print(item)
        print(shared_list)
        print(t.value)

    # Without a manager: return the value.
    p = forklift.Process(target=person)
    p.start()
    print(f"result(): {p.result(timeout=10)}")


if __name__ == "__main__":
    main()
