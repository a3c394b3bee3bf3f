"""The ``trustkit`` command line: a thin shell over the library (one module per command group).

Every command parses its options, calls one library function and renders the result: a rich
table when stdout is a terminal, JSON when ``--json`` is given or stdout is not a terminal
(scripts get machine-readable output by default; nsc #589). Errors are one line on stderr and an
exit status from :data:`trustkit.errors.EXIT_STATUS`.
"""
