"""`python -m bench`: Tidings and Cyrus IMAP side by side (bench/run.py)."""

import sys

from bench.run import main

sys.exit(main())
