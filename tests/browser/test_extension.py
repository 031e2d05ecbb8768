"""The pack's web extension in the real frontend: it loads, registers, and logs no error."""
from __future__ import annotations

from sl_page import pack_console_errors


def test_extension_loads_with_no_console_error(page, shots):
    names = page.evaluate("() => window.app.extensions.map(e => e.name)")
    assert "schedule_lab.schedule_plot" in names, names
    assert pack_console_errors(page) == []
    page.screenshot(path=str(shots / "frontend_loaded.png"))
