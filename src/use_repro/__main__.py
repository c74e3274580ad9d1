"""`python -m use_repro` is the same as the `use-repro` console script."""
import sys

from use_repro.cli import main

sys.exit(main())
