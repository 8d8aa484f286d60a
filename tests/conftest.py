# pytester runs pytest in this process and forgets the modules a run imported; C extensions
# (numpy, torch) cannot be imported twice in one process, so load them once up front.
import numpy  # noqa: F401
import pandas  # noqa: F401
import pydantic  # noqa: F401
import scipy.special  # noqa: F401
import scipy.stats  # noqa: F401
import statsmodels.stats.proportion  # noqa: F401
import torch  # noqa: F401
