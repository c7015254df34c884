"""Analysis of run records and models: report tables and figures, approximation error, model checks."""
