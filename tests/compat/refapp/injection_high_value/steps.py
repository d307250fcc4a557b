"""The same steps as the standard version (written for the corpus)."""

from refapp.injection_standard.steps import *  # noqa: F403
