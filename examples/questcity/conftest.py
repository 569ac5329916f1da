"""The example's modules (questcity.py, local_s3.py) import as top-level modules in its
tests, as they do when run from this folder."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
