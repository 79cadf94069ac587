"""Training of the TEMPEH stages: one trainer (``trainer``); the stages plug in (``stages``)."""
