"""Settings for the whole test session (helpers live in tests/helpers.py)."""

import os

# Textual redraws a changing screen up to 60 times a second, for the eye. The
# console's tests wait for what is drawn, never for frames: 15 a second are
# plenty, and leave the CPU to the servers under test (a quarter less for the
# app tests). Set before anything imports Textual, which reads it once.
os.environ.setdefault("TEXTUAL_FPS", "15")
