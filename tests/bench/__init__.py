"""Benchmarks (``make bench``). The servers they start expose metrics and the
console on ports of their own: several run at once."""

import os

os.environ.setdefault("GOVEX_METRICS_LISTEN", "127.0.0.1:0")
os.environ.setdefault("GOVEX_CONSOLE_LISTEN", "127.0.0.1:0")
