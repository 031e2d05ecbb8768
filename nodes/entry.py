"""Wire the pack into ComfyUI: register dropdown names, the schedules folder, and the V3 node list."""
from __future__ import annotations

from . import host

host.ensure_schedule_folder()
host.register_all()

comfy_entrypoint = None
_api = host.v3_api()
if _api is not None:
    # a node needing an io member this host lacks is left out with one warning; the others load
    _nodes = host.usable_nodes(__package__, ("schedule_nodes", "tada_nodes", "search_nodes", "constant_rate_nodes"))

    class ScheduleLabExtension(_api.ComfyExtension):
        async def get_node_list(self):
            return list(_nodes)

    async def comfy_entrypoint():  # noqa: F811 - replaces the None above on V3 hosts
        return ScheduleLabExtension()
