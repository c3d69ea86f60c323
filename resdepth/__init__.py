__version__ = "0.1.0"

import warnings
# fastai compiles a few layers with torch.jit.script at import time, which torch >= 2.10 flags on every import
warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated', category=FutureWarning)
