"""`python -m routatic_asgi.cli`: the `routatic-asgi` command."""

import sys

from routatic_asgi.cli import main

sys.exit(main())
