"""Where the real host is: COMFYUI_PATH (a ComfyUI checkout) and COMFYUI_PYTHON (its venv's python)."""
import os
import sys

COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
COMFYUI_PYTHON = os.environ.get("COMFYUI_PYTHON", sys.executable)
