"""Schedule Lab — a ComfyUI node pack (entry point only).

ComfyUI imports this folder under a mangled module name. When ComfyUI is present we register the
pack's names in the stock KSampler dropdowns and expose the V3 ``comfy_entrypoint`` plus the web
directory; anywhere else (tests, the standalone ``schedule-lab`` command) importing the package does
nothing, so the core stays usable without ComfyUI.
"""
import importlib.util as _ilu

WEB_DIRECTORY = "./web"


def __getattr__(name: str):
    if name == "__version__":  # the one number lives in pyproject.toml (version.py reads it)
        from .version import PACK_VERSION

        return PACK_VERSION
    raise AttributeError(name)


if _ilu.find_spec("comfy") is not None and _ilu.find_spec("folder_paths") is not None:
    from .nodes import entry as _entry

    if _entry.comfy_entrypoint is not None:
        comfy_entrypoint = _entry.comfy_entrypoint  # ComfyUI's V3 loader looks this name up
    else:  # a host without the V3 API: the dropdown entries are registered, no nodes
        NODE_CLASS_MAPPINGS: dict = {}
