"""Template-browser thumbnails: example_workflows/<name>.jpg from the browser tests' screenshots.

ComfyUI 0.3.64's frontend shows a custom pack's template card with ``/api/workflow_templates/<pack>/<name>.jpg`` and
uses the file name (``_`` and ``-`` read as spaces) as its description. Run the browser tests first
(``"$COMFYUI_PYTHON" -m pytest tests/browser``; they write ``out/browser/workflow_<name>[_ran].png``), then
``python lab/tools/make_workflow_thumbnails.py``. A screenshot after the run is preferred (it shows the results).
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "out" / "browser"
WIDTH = 480


def thumbnail(shot: Image.Image) -> Image.Image:
    """The template-card picture of a browser-test screenshot: the canvas without the frontend's side and top bars,
    WIDTH pixels wide (the browser tests compare a fresh one with the committed file)."""
    image = shot.convert("RGB")
    left = 64 * image.width // 1600  # drop the frontend's sidebar
    image = image.crop((left, 80 * image.height // 1000, image.width, image.height))
    return image.resize((WIDTH, round(image.height * WIDTH / image.width)), Image.LANCZOS)


def main() -> None:
    made = []
    for workflow in sorted((ROOT / "example_workflows").glob("*.json")):
        shots = [SHOTS / f"workflow_{workflow.stem}_ran.png", SHOTS / f"workflow_{workflow.stem}.png"]
        shot = next((p for p in shots if p.exists()), None)
        if shot is None:
            print(f"no screenshot for {workflow.stem}; run the browser tests first")
            continue
        thumbnail(Image.open(shot)).save(workflow.with_suffix(".jpg"), quality=72, optimize=True)
        made.append(workflow.with_suffix(".jpg").name)
    print(f"wrote {made}")


if __name__ == "__main__":
    main()
