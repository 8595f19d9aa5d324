"""A bench job function whose process dies (imported by spawned workers in test_bench.py)."""

import os


def die(job, queue):
    os._exit(9)  # what a SIGKILL or the OOM killer looks like to the pool
