"""The ComfyUI side of the pack: host/ is the only package that touches ComfyUI (host/access.py the only importer);
registry.py lists our dropdown names."""
