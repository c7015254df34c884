"""GPU benchmarks: the gated-linear kernel, decode through the harness's modules, kernel time breakdown."""
