"""`python -m gfsr_tf.cli ...`: the `gfsr` console script without the installed entry point."""
import sys

from . import main

sys.exit(main())
