"""Shared image operations (geometry, luminance, flow units, sampling, ramps, metrics, ...).

Plain functions on arrays, imported by the node modules; none of them is a node, so the
registry never sees this package.
"""
