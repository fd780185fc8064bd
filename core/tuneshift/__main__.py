"""`python -m tuneshift`: what `accelerate launch -m tuneshift train RUN_DIR` starts in each process."""

import sys

from tuneshift._cli import main

sys.exit(main())
