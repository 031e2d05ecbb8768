"""Wire the pack into ComfyUI: register dropdown names, the schedules folder, and the V3 node list.

The node list is every class marked ``@node`` in a ``nodes/*_nodes.py`` file (see :mod:`.node_list`): adding a
node module is adding that one file.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from . import host, node_list

host.ensure_schedule_folder()
host.register_all()

from . import plot_route  # noqa: E402 - after the registration above, so the plot lists pack schedulers

plot_route.register()

#: The pack's node modules, found by file name (``nodes/<name>_nodes.py``), imported in this order.
NODE_MODULES = tuple(sorted(p.stem for p in Path(__file__).parent.glob("*_nodes.py")))


def load_node_modules() -> list[type]:
    """Import every node module (each registers its classes) and return the registered node classes."""
    for name in NODE_MODULES:
        try:
            importlib.import_module(f"{__package__}.{name}")
        except AttributeError as e:  # a class body needs an API member this ComfyUI lacks: only this module is lost
            host.warn_once(f"nodes-{name}", f"the nodes of {name} are disabled on this ComfyUI: {e}")
    return list(node_list.NODES)


comfy_entrypoint = None
_api = host.v3_api()
if _api is not None:
    # a node needing an io member this host lacks is left out with one warning; the others load
    _nodes = host.definable_nodes(load_node_modules())

    class ScheduleLabExtension(_api.ComfyExtension):
        async def get_node_list(self):
            return list(_nodes)

    async def comfy_entrypoint():  # noqa: F811 - replaces the None above on V3 hosts
        return ScheduleLabExtension()
