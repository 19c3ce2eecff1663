"""Utilities shared by training code: ``ferrotorch.utils.data`` (datasets, samplers, loaders)."""

from ferrotorch.utils import data

__all__ = ["data"]
