"""Imports every family module in ``models/`` so their ``@register`` calls run."""

import importlib
import pkgutil

import models

_NOT_FAMILIES = {"registry", "zoo", "layers"}

for _info in pkgutil.iter_modules(models.__path__):
    if _info.name not in _NOT_FAMILIES and not _info.name.startswith("_"):
        importlib.import_module(f"models.{_info.name}")
