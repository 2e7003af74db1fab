"""`python -m worldpolicy …` (and `torchrun -m worldpolicy train …`) run the CLI."""

from worldpolicy.cli import main

raise SystemExit(main())
