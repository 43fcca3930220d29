"""`python -m routatic_asgi.cli`: the `routatic-asgi` command."""

import sys

from routatic_asgi.cli import main

if __name__ == "__main__":
    sys.exit(main())
