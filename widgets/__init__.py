"""User interface components (installed as ``workbench.widgets``)."""
