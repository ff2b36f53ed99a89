"""forklift's local engine (private): scheduler, workers, channels, supervision.

Start reading at core.py: its docstring draws the data path and its invariants.
"""
