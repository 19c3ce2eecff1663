"""``python -m ferrotorch.gpt2``: the GPT-2 runner's command line (see ``ferrotorch.gpt2.cli``)."""

import sys

from ferrotorch.gpt2.cli import main

if __name__ == "__main__":
    sys.exit(main())
