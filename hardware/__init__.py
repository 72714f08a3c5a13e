"""Chip emulators (installed as ``workbench.hardware``); they import only the core."""
