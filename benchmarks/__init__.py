"""Benchmarks for daft_flow: ``python -m benchmarks <name> [args]``.

Each benchmark is a module ``benchmarks.<name>`` exposing ``main(argv) -> int``.
It runs daft_flow side by side with the peers a user would otherwise pick, in
one process, on the same input, and prints a table with ratios.
"""
