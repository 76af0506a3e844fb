"""``python -m drpc.twin ...``: run the digital twin (see :func:`drpc.twin.server.main`)."""

import sys

from drpc.twin.server import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m drpc.twin"))
