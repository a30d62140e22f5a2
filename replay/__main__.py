"""Historical replay: ``python -m replay PATH... --format taobao [--report FILE.json]``."""

import sys

from rtp.tools.cli import main

sys.exit(main(["replay", *sys.argv[1:]]))
