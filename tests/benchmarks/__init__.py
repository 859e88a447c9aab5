"""Tests of the benchmark scripts (benchmarks/scripts/), their README and project.yml."""
