"""``python -m schedule_lab.lab.cli`` = the ``schedule-lab`` command."""
from . import main

raise SystemExit(main())
