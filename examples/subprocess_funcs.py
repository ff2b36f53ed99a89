"""Tutorial: Subprocess > 示例 (the child program, funcs.py: divide a by b given as JSON).

Run by subprocess_main.py with one argument, a JSON object {"a": ..., "b": ...};
prints a / b on stdout and logs to func.log in the current directory. Without an
argument it uses {"a": 1, "b": 1}.
"""

# Fixes to the tutorial's code:
# - logging.info('params', data_json) passed an argument with no %s for it: the
#   logging module printed "--- Logging error ---" with a traceback to stderr on
#   every call. It is logging.info("params %s", data_json);
# - the log file was written next to the script; it goes to the current directory;
# - the work runs under ``if __name__ == "__main__":``.

import json
import logging
import sys


def divide(a: float, b: float) -> float:
    return a / b


def main() -> None:
    # a child process sets up its own logging
    logging.basicConfig(
        level=logging.DEBUG,
        filename="func.log",
        filemode="w",
        format="%(asctime)s - %(levelname)s - %(message)s",
    )
    data_json = json.loads(sys.argv[1] if len(sys.argv) > 1 else '{"a": 1, "b": 1}')
    logging.info("params %s", data_json)
    a, b = data_json.get("a"), data_json.get("b")
    res = divide(a, b)
    logging.info("result: %s", res)
    print(res)  # the parent reads this from the child's stdout


if __name__ == "__main__":
    main()
