"""What every report section uses, imported by the report's renderers and by the report modules
of method folders alike (so that neither imports the other): number formats and matplotlib on
the file-only backend."""
from __future__ import annotations

import math
import textwrap


def fmt(v) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3f}"


def ci(c: dict) -> str:
    return f"{fmt(c['estimate'])} [{fmt(c['ci_low'])}, {fmt(c['ci_high'])}]"


def wrap_title(text: str, width: int = 24) -> str:
    """A panel title wrapped onto lines of at most `width` characters - never cut: layer names
    such as "gradcam++@conv5_block3_out" break after "@" first, then inside the word."""
    return textwrap.fill(text.replace("@", "@ "), width=width).replace("@ ", "@")


def add_colorbar(fig, axes, cmap: str, vmin: float, vmax: float, label: str) -> None:
    """One colour bar for a grid of map panels that share a scale (constrained layout: the
    bar takes its own column instead of squeezing the panels)."""
    import matplotlib.cm
    import matplotlib.colors
    import numpy as np
    fig.set_layout_engine("constrained")
    mappable = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(vmin, vmax), cmap)
    bar = fig.colorbar(mappable, ax=list(np.ravel(axes)), fraction=0.03, pad=0.02, shrink=0.6)
    bar.set_label(label, fontsize=7)
    bar.ax.tick_params(labelsize=6)


def save_figure(fig, path) -> bool:
    """Lay out, write (110 dpi) and close a figure; True (what the plot functions return)."""
    import matplotlib.pyplot as plt
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display here or on servers)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt
