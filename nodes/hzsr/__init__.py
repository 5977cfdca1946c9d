"""Hybrid-zoom super-resolution (HZSR) stages, one module per stage."""
