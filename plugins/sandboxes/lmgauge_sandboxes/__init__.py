"""lmgauge sandboxes: executors for model-written code (the ``local`` bubblewrap sandbox)."""
