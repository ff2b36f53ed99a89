"""The primitives: Lock, Queue, Value, Pipe... that pickle at any time, so a Pool task can take them.

multiprocessing's own pass their descriptors only while a process starts; these name
what they share instead, and the receiver opens it again:

- ``synchronize.py``: Lock, RLock, Semaphore, Condition, Barrier (a POSIX semaphore's name);
- ``queues.py``: Queue, JoinableQueue, SimpleQueue (their pipe ends as descriptor tokens);
- ``sharedctypes.py``: Value, Array, RawValue, RawArray (a memfd's token);
- ``pipe.py``: Pipe()'s Connection ends (the descriptor, handed over once);
- ``fd_tokens.py``: the token ``(pid, fd, inode)`` that names a descriptor, opened through /proc;
- ``memfd.py``: shared memory segments in a memfd (also the engine's big-argument path);
- ``registry.py``: one object per shared thing in each process.

``forklift.context`` hands them out; ``forklift.shared`` (SharedArray) builds on memfd.
"""
