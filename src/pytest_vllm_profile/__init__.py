"""pytest-vllm-profile: vLLM GPU profiles as performance regression tests.

The library (everything but the `plugin` package) has no pytest imports. Data flows one way:
workload -> launcher (server) -> capture -> trace reader -> analysis -> baseline store
-> comparison -> report.
"""

__version__ = "0.1.0"
