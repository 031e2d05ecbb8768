"""Wire the pack into ComfyUI: register dropdown names, the schedules folder, and the V3 node list."""
from __future__ import annotations

from . import host

host.ensure_schedule_folder()
host.register_all()

from . import plot_route  # noqa: E402 - after the registration above, so the plot lists pack schedulers

plot_route.register()

comfy_entrypoint = None
_api = host.v3_api()
if _api is not None:
    from . import ab_nodes, constant_rate_nodes, schedule_nodes, search_nodes, tada_nodes

    class ScheduleLabExtension(_api.ComfyExtension):
        async def get_node_list(self):
            return [*schedule_nodes.NODES, *tada_nodes.NODES, *search_nodes.NODES, *constant_rate_nodes.NODES,
                    *ab_nodes.NODES]

    async def comfy_entrypoint():  # noqa: F811 - replaces the None above on V3 hosts
        return ScheduleLabExtension()
