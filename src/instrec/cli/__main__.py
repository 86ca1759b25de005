"""``python -m instrec.cli``: the same as the ``instrec`` command."""
import sys

from instrec.cli import main

sys.exit(main())
