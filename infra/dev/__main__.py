import sys

from infra.dev.server import main

sys.exit(main())
