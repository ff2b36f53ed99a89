"""Tutorial: Process > 对进程进行命名 (naming processes).

Same as multiprocessing: ``name=`` sets the name, else it is "Process-N". With
forklift.Process the child can also return its name (result()), so the parent
prints it in a fixed order.
"""

# Fixes to the tutorial's code:
# - the comment "gets the parent's name" was wrong: current_process() in the child
#   is the child itself;
# - "Exting" -> "Exiting"; the 3 s sleep is 0.2 s; the parent joins its children.

import time

import forklift


def foo() -> str:
    name = forklift.current_process().name  # this (child) process's name
    print(f"Starting {name}", flush=True)
    time.sleep(0.2)
    print(f"Exiting {name}", flush=True)
    return name


def main() -> None:
    process_with_name = forklift.Process(name="foo_process", target=foo)
    process_with_default_name = forklift.Process(target=foo)
    process_with_name.start()
    process_with_default_name.start()
    print(f"named process ran as: {process_with_name.result(timeout=10)}")
    default = process_with_default_name.result(timeout=10)
    print(f"default name starts with 'Process-': {default.startswith('Process-')}")


if __name__ == "__main__":
    main()
