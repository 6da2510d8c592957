"""Runs a Python script under Pyroscope's SDK at 100 Hz, uploading to BENCH_PYROSCOPE_URL."""
import os
import runpy
import sys

import pyroscope

pyroscope.configure(application_name="bench", server_address=os.environ["BENCH_PYROSCOPE_URL"],
                    sample_rate=100, oncpu=True, gil_only=False)
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    pyroscope.shutdown()
