"""Reports: tables, plots, Markdown/HTML, and the sections of BENCHMARKS.md."""
