"""The pack's V3 node classes, each declared once where it is defined (pure Python; no ComfyUI import).

A node module is a file ``nodes/<name>_nodes.py``; it marks each node class with ``@node``. ``nodes/entry.py``
imports every such file and hands :data:`NODES` to ComfyUI, so a new node module needs no edit anywhere else.
"""
from __future__ import annotations

#: Every registered node class, in the order the modules registered them.
NODES: list[type] = []


def node(cls: type) -> type:
    """Class decorator: register ``cls`` as a pack node (re-importing its module replaces the old class)."""
    key = (cls.__module__, cls.__qualname__)
    NODES[:] = [c for c in NODES if (c.__module__, c.__qualname__) != key]
    NODES.append(cls)
    return cls


#: The stock seed range (KSampler's ``seed``, SamplerCustom's ``noise_seed``): 0 .. 2**64 - 1.
SEED_MAX = 0xFFFFFFFFFFFFFFFF
