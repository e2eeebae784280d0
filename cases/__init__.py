"""Worked cases built on sciml, e.g. cases.gomd, the GOMO ocean model."""
