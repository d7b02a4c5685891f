import sys

from media_assets.cli import main

sys.exit(main())
