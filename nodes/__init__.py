"""The ComfyUI side of the pack: host.py is the only module that touches ComfyUI; registry.py lists our names."""
