"""Are the embedded benchmark's bytes the pinned ones, here and under other library releases?

    python benchmarks/benchmark_bytes.py                    # this environment
    python benchmarks/benchmark_bytes.py --baseline-simd    # numpy without AVX2/AVX-512 loops
    python benchmarks/benchmark_bytes.py --with "numpy==2.1.3 scipy==1.14.1"   # a throw-away venv
    python benchmarks/benchmark_bytes.py --newest           # the newest releases setup.cfg allows

Prints one line per environment (digest, match or not, the numpy/scipy versions) and exits 1 when
any digest differs from `gfsr_tf.datasets.synthetic.BENCHMARK_SHA256`. The benchmark needs only
numpy and scipy, so a throw-away venv installs those two (from the package index: needs network
or a local mirror) and this checkout without its other dependencies.
"""
from __future__ import annotations

import argparse
import configparser
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# numpy's dispatchable SIMD targets on x86-64; switching them off leaves its baseline loops
BASELINE_SIMD = {"NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"}
PROBE = ("import numpy, scipy; from gfsr_tf.datasets.synthetic import benchmark_digest; "
         "print(benchmark_digest(), numpy.__version__, scipy.__version__)")


def digest_in(python: str, env: dict | None = None) -> tuple[str, str, str]:
    """(digest, numpy version, scipy version) computed by `python` in a fresh process."""
    out = subprocess.run([python, "-c", PROBE], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip()
                           else f"exit {out.returncode}")
    digest, numpy_version, scipy_version = out.stdout.split()[-3:]
    return digest, numpy_version, scipy_version


def newest_allowed() -> list[str]:
    """numpy and scipy requirements exactly as setup.cfg's install_requires writes them: pip
    then takes the newest releases inside those ranges."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = [ln.strip() for ln in cfg["options"]["install_requires"].splitlines()]
    return [ln for ln in lines if re.match(r"(numpy|scipy)\b", ln)]


def digest_in_venv(requirements: list[str]) -> tuple[str, str, str]:
    with tempfile.TemporaryDirectory(prefix="benchmark-bytes-") as tmp:
        subprocess.run([sys.executable, "-m", "venv", tmp], check=True)
        python = str(Path(tmp) / "bin" / "python")
        pip = subprocess.run([python, "-m", "pip", "install", "-q", "--only-binary", ":all:",
                              *requirements], capture_output=True, text=True)
        if pip.returncode != 0:
            raise RuntimeError("pip could not install " + " ".join(requirements) + ": "
                               + (pip.stderr.strip().splitlines() or ["?"])[-1])
        return digest_in(python)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline-simd", action="store_true",
                   help="also compute it with numpy's AVX2/AVX-512 loops switched off")
    p.add_argument("--with", dest="with_", action="append", default=[], metavar="REQS",
                   help="also compute it in a throw-away venv holding these requirements "
                        "(space-separated, e.g. \"numpy==2.1.3 scipy==1.14.1\"); repeatable")
    p.add_argument("--newest", action="store_true",
                   help="also in a throw-away venv with the newest numpy/scipy setup.cfg allows")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from gfsr_tf.datasets.synthetic import BENCHMARK_SHA256
    runs = [("this environment", lambda: digest_in(sys.executable))]
    if args.baseline_simd:
        runs.append(("numpy baseline SIMD", lambda: digest_in(sys.executable, BASELINE_SIMD)))
    for reqs in args.with_:
        runs.append((f"venv: {reqs}", lambda r=reqs.split(): digest_in_venv(r)))
    if args.newest:
        runs.append((f"venv: newest of {' '.join(newest_allowed())}",
                     lambda: digest_in_venv(newest_allowed())))
    failed = False
    print(f"pinned  {BENCHMARK_SHA256}")
    for name, run in runs:
        try:
            digest, numpy_version, scipy_version = run()
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            print(f"error   {name}: {exc}")
            failed = True
            continue
        same = digest == BENCHMARK_SHA256
        failed |= not same
        print(f"{'same' if same else 'DIFFERS'}    {digest}  numpy {numpy_version}, "
              f"scipy {scipy_version}  ({name})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
