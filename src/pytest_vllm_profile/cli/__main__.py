"""`python -m pytest_vllm_profile.cli ...`: the same as the `vllm-profile` command."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
