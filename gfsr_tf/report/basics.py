"""What every report section uses, imported by the report's renderers and by the report modules
of method folders alike (so that neither imports the other): number formats and matplotlib on
the file-only backend."""
from __future__ import annotations

import math


def fmt(v) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3f}"


def ci(c: dict) -> str:
    return f"{fmt(c['estimate'])} [{fmt(c['ci_low'])}, {fmt(c['ci_high'])}]"


def save_figure(fig, path) -> bool:
    """Lay out, write (110 dpi) and close a figure; True (what the plot functions return)."""
    import matplotlib.pyplot as plt
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
