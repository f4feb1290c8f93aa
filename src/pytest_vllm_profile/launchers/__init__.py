"""Ways of getting a vLLM server (see `base.Launcher`).

Implementations are imported from their modules (`launchers.process`, `launchers.url`, ...)
so that one launcher's optional dependencies never burden another.
"""
