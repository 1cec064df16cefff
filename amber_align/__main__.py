"""``python -m amber_align`` (and ``accelerate launch -m amber_align align --config …``)."""

import sys

from amber_align.cli import main

sys.exit(main())
