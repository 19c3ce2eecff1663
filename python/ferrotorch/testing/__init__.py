"""``ferrotorch.testing``: torch's ``assert_close`` and a ferrotorch-vs-torch ``crosscheck``.

>>> import ferrotorch
>>> from ferrotorch.testing import assert_close
>>> assert_close(ferrotorch.ones(2) * 3, ferrotorch.full((2,), 3.0))
"""

from ferrotorch.testing._comparison import assert_close
from ferrotorch.testing._crosscheck import Comparison, CrossCheckReport, crosscheck

__all__ = ["Comparison", "CrossCheckReport", "assert_close", "crosscheck"]
