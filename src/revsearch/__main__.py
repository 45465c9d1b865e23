import sys

from revsearch.cli import main

sys.exit(main())
