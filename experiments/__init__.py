"""The harness above the sparsity library: harness/ (run one evaluation), analysis/ (tables, figures, error studies), bench/ (GPU benchmarks), scripts/ (machine set-up and sweep helpers)."""
