"""``python -m worldmodels`` is ``wm`` (and what ``torchrun -m worldmodels`` launches)."""

from .cli import main

raise SystemExit(main())
