"""The matplotlib Figure that runmanager's plots return: one that Jupyter shows as a picture.

IPython displays a plain ``matplotlib.figure.Figure`` as a picture only once the inline
backend has registered a formatter for it, which happens when pyplot is imported (or
``%matplotlib inline`` is run). runmanager builds its figures without pyplot, so a plain
Figure would show as the text ``<Figure size 750x380 with 1 Axes>`` in a kernel where the
user imported neither. This module imports matplotlib: it is imported only when a figure
is made.
"""

from __future__ import annotations

import io

from matplotlib.figure import Figure

__all__ = ["InlineFigure"]


class InlineFigure(Figure):
    """A Figure with a PNG representation, so IPython and Jupyter show it as a picture
    whatever the backend; everything else is matplotlib's Figure.

    Examples:
        >>> fig = InlineFigure(figsize=(2, 1))
        >>> fig._repr_png_()[:8]
        b'\\x89PNG\\r\\n\\x1a\\n'
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        # As the inline backend draws a figure: cropped to what is drawn, so a legend placed
        # beside the axes is not cut off.
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()
