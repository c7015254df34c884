"""Mutants of kernels/gated_gemv.cu: each must make tests/kernels/test_cuda_gemv.py fail (run on a GPU host).

    python experiments/scripts/cuda_mutants.py      # from the repository root; prints one line per mutant

Each mutant is built in a copy of the tree (its own kernel cache), so the working tree is never changed.
The output of the last run is results/kernels/cuda/mutants_h100.txt.
"""
import os
import shutil
import subprocess
import sys
import tempfile

MUTANTS = {
    "keep the smallest scores": ("keep[q] = a > t;", "keep[q] = a < t;"),
    "reduction skips split 0": ("for (int q = 0; q < splits; ++q) s +=", "for (int q = 1; q < splits; ++q) s +="),
    "tickets not reset": ("if (threadIdx.x == 0) p.tickets[tile] = 0;", ""),
    "activation values ignored": ("xs[pos] = xv[q];", "xs[pos] = 1.f;"),
    "every row read, dropped ones times 0": ("keep[q] = a > t;", "keep[q] = true; if (!(a > t)) xv[q] = 0.f;"),
    "scale ignored": ("if (p.scale != nullptr)", "if (false)"),
}


def main() -> int:
    root = os.getcwd()
    missed = 0
    for name, (old, new) in MUTANTS.items():
        tmp = tempfile.mkdtemp()
        dst = os.path.join(tmp, "repo")
        shutil.copytree(root, dst, ignore=shutil.ignore_patterns(".git", ".venv", ".whl", ".assets", ".peer",
                                                                 "__pycache__"))
        src = os.path.join(dst, "kernels", "gated_gemv.cu")
        with open(src) as f:
            text = f.read()
        if text.count(old) != 1:
            raise SystemExit(f"mutant '{name}': the line to change occurs {text.count(old)} times, not once")
        with open(src, "w") as f:
            f.write(text.replace(old, new))
        env = dict(os.environ, WINA_KERNEL_CACHE=os.path.join(tmp, "kc"), PYTHONPATH=dst)
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                            "tests/kernels/test_cuda_gemv.py"], cwd=dst, env=env, capture_output=True, text=True)
        last = [line for line in r.stdout.splitlines() if line.strip()][-1:]
        missed += r.returncode == 0
        print(f"mutant '{name}': {'FAILS (caught)' if r.returncode != 0 else 'PASSES (not caught!)'}  {last}",
              flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
