"""protlab: protein representation learning in notebooks.

The package holds every model, training loop and metric; the numbered notebooks in
``notebooks/`` call it. See README.md and DESIGN.md for the science and the run-directory
contract between notebooks.
"""
from protlab.core.errors import InputError, ParseError, ProtlabError

__version__ = "0.1.0"
__all__ = ["ProtlabError", "ParseError", "InputError", "__version__"]
